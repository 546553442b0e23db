#include "cli/client.h"

#include <sys/stat.h>

#include <boost/json/parse.hpp>
#include <cstdlib>
#include <iostream>

#include "common/files.h"

namespace mill::cli {

std::string client_config_path() {
  if (const char* p = std::getenv("MILL_CONFIG"); p && *p) return p;
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) {
    return std::string(x) + "/mill/client.toml";
  }
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.config/mill/client.toml";
}

void make_parent_dirs(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    std::string dir = path.substr(0, slash);
    for (size_t i = 1; i <= dir.size(); ++i) {
      if (i == dir.size() || dir[i] == '/') {
        std::string part = dir.substr(0, i);
        ::mkdir(part.c_str(), 0700);
      }
    }
  }
}

Result<void> write_client_config(const std::string& path, const ClientConfig& config) {
  make_parent_dirs(path);
  std::string text =
      "# Written by `mill init` or `mill login`: where the Mill API is and its token.\n";
  text += "address = \"" + config.address + "\"\n";
  text += "token = \"" + config.token + "\"\n";
  if (!config.ca.empty()) text += "ca = \"" + config.ca + "\"\n";
  return write_file_atomic(path, text, 0600);
}

ClientConfig load_client_config() {
  ClientConfig c;
  std::string path = client_config_path();
  if (auto text = read_file(path)) {
    c.source = path;
    // The file is ours: `key = "value"` lines, a subset of TOML.
    size_t pos = 0;
    while (pos < text->size()) {
      size_t end = text->find('\n', pos);
      std::string line = text->substr(pos, end == std::string::npos ? end : end - pos);
      pos = end == std::string::npos ? text->size() : end + 1;
      size_t eq = line.find('=');
      if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
      std::string key = trim(line.substr(0, eq));
      std::string value = trim(line.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      if (key == "address") c.address = value;
      if (key == "token") c.token = value;
      if (key == "ca") c.ca = value;
    }
  }
  if (const char* a = std::getenv("MILL_ADDR"); a && *a) c.address = a;
  if (const char* ca = std::getenv("MILL_CA"); ca && *ca) c.ca = ca;
  if (const char* t = std::getenv("MILL_TOKEN"); t && *t) {
    c.token = t;
    c.source = "MILL_TOKEN";
  }
  return c;
}

Result<net::ClientResponse> call_api_raw(const ClientConfig& config, net::ClientRequest req) {
  req.headers.push_back({"Authorization", "Bearer " + config.token});
  if (!config.ca.empty() && config.address.starts_with("https://")) {
    auto ca = read_file(config.ca);
    if (!ca) return make_error(ErrorCode::kInvalidArgument, "the CA file: " + ca.error().message);
    req.ca_pem = std::move(*ca);
  }
  auto res = net::http_request(config.address, req);
  if (!res) {
    return make_error(res.error().code, res.error().message +
                                            "\n  is `mill server` running there? Set MILL_ADDR "
                                            "or the address in " +
                                            client_config_path() + " to point elsewhere.");
  }
  if (res->status == 401) {
    return make_error(ErrorCode::kUnauthenticated, "the API rejected the token (" +
                                                       error_text(*res) +
                                                       ").\n  Set MILL_TOKEN, or use the "
                                                       "client config `mill init` wrote (" +
                                                       client_config_path() + ").");
  }
  return res;
}

std::string error_text(const net::ClientResponse& res) {
  // Error documents may carry more than "error" (a 400's "errors", a 409's "deploy").
  boost::system::error_code ec;
  auto v = boost::json::parse(res.body, ec);
  if (ec || !v.is_object()) return res.body;
  auto* e = v.as_object().if_contains("error");
  return e && e->is_string() ? std::string(e->as_string()) : res.body;
}

namespace {

Result<std::string> send(const ClientConfig& config, net::ClientRequest req) {
  auto res = MILL_TRY(call_api_raw(config, std::move(req)));
  if (res.status >= 200 && res.status < 300) return std::move(res.body);
  return make_error(ErrorCode::kInvalidArgument, error_text(res));
}

}  // namespace

Result<std::string> call_api(const ClientConfig& config, const std::string& method,
                             const std::string& target, const std::string& body,
                             std::chrono::milliseconds timeout) {
  return send(config, net::json_request(method, target, body, timeout));
}

Result<void> call_api_stream(const ClientConfig& config, const std::string& target,
                             net::BodySink sink, std::chrono::milliseconds idle_timeout) {
  net::ClientRequest req;
  req.target = target;
  req.timeout = idle_timeout;
  req.body_sink = std::move(sink);
  MILL_TRY(send(config, std::move(req)));
  return {};
}

Result<boost::json::value> call_api_json(const ClientConfig& config, const std::string& method,
                                         const std::string& target, const std::string& body,
                                         std::chrono::milliseconds timeout) {
  std::string text = MILL_TRY(call_api(config, method, target, body, timeout));
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec) return make_error(ErrorCode::kInternal, "the server sent malformed JSON");
  return v;
}

std::string address_host(std::string_view address) {
  std::string a = net::normalize_address(address);
  if (a.starts_with("[")) {
    size_t end = a.find(']');
    return a.substr(1, end == std::string::npos ? std::string::npos : end - 1);
  }
  size_t colon = a.rfind(':');
  return colon == std::string::npos ? a : a.substr(0, colon);
}

bool is_loopback_address(std::string_view address) {
  std::string host = address_host(address);
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

int fail(const std::string& message) {
  std::cerr << "mill: " << message << "\n";
  return 1;
}

}  // namespace mill::cli
