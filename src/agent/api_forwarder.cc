#include "agent/api_forwarder.h"

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"
#include "net/http_client.h"

namespace mill::agent {

namespace {

// Hop-by-hop and framing headers: each side of the forward sets its own.
bool hop_by_hop(std::string_view name) {
  for (std::string_view h :
       {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "trailer",
        "upgrade", "proxy-connection", "server", "date"}) {
    if (net::iequals(name, h)) return true;
  }
  return false;
}

}  // namespace

struct ApiForwarder::State {
  ApiForwarderOptions options;
  std::shared_ptr<net::CancelToken> cancel = std::make_shared<net::CancelToken>();
  std::unique_ptr<net::HttpServer> server;
  std::mutex mutex;
  std::condition_variable idle;
  int in_flight = 0;  // forwards running, each on a detached thread holding this State
  bool stopping = false;

  void forward(net::HttpRequest req, std::shared_ptr<net::ResponseWriter> writer);
};

void ApiForwarder::State::forward(net::HttpRequest req,
                                  std::shared_ptr<net::ResponseWriter> writer) {
  net::ClientRequest out;
  out.method = req.method;
  out.target = req.target;
  out.body = std::move(req.body);
  out.timeout = options.timeout;
  out.ca_pem = options.ca_pem;
  out.cancel = cancel;
  for (const auto& h : req.headers) {
    if (!hop_by_hop(h.name)) out.headers.push_back(h);
  }
  out.headers.push_back({"X-Forwarded-For", req.remote.substr(0, req.remote.rfind(':'))});
  bool streaming = false;
  std::string buffered;
  net::HttpResponse answer;
  out.on_head = [&](const net::ClientResponse& head) -> Result<void> {
    answer.status = head.status;
    answer.content_type.clear();
    for (const auto& h : head.headers) {
      if (net::iequals(h.name, "content-type")) {
        answer.content_type = h.value;
      } else if (!hop_by_hop(h.name)) {
        answer.headers.push_back(h);
      }
    }
    // An event stream goes on as it comes; anything else is passed on whole.
    if (head.status / 100 == 2 && answer.content_type.starts_with("text/event-stream")) {
      streaming = true;
      writer->begin_stream(answer.status, answer.content_type, answer.headers);
    }
    return {};
  };
  out.body_sink = [&](std::string_view chunk) -> Result<void> {
    if (!streaming) {
      buffered.append(chunk);
      return {};
    }
    if (!writer->write(std::string(chunk))) {
      return make_error(ErrorCode::kUnavailable, "the client left");
    }
    return {};
  };
  auto res = net::http_request(options.leader, out);
  if (streaming) return writer->close();
  if (!res) {
    net::HttpResponse failed;
    failed.status = 502;
    failed.body = "{\"error\":\"this node cannot reach the server: " + res.error().message + "\"}";
    return writer->respond(std::move(failed));
  }
  answer.body = res->status / 100 == 2 ? std::move(buffered) : std::move(res->body);
  writer->respond(std::move(answer));
}

Result<std::unique_ptr<ApiForwarder>> ApiForwarder::start(ApiForwarderOptions options) {
  auto state = std::make_shared<State>();
  state->options = std::move(options);
  net::HttpServerOptions http;
  http.listen = state->options.listen;
  http.tls = state->options.tls;
  http.max_body_bytes = 16 * 1024 * 1024;  // the server applies its own limits
  std::weak_ptr<State> weak = state;
  auto server = MILL_TRY(net::HttpServer::create(http, [weak](const net::HttpRequest& req) {
    net::HttpResponse res;
    if (!req.path.starts_with("/v1/") || req.path.starts_with("/v1/agent/")) {
      res.status = 404;
      res.body = "{\"error\":\"no such route: " + req.path + "\"}";
      return res;
    }
    res.async = [weak, req](std::shared_ptr<net::ResponseWriter> writer) {
      auto s = weak.lock();
      if (!s) return;
      {
        std::lock_guard lock(s->mutex);
        if (s->stopping) {
          net::HttpResponse stopping;
          stopping.status = 503;
          return writer->respond(std::move(stopping));
        }
        ++s->in_flight;
      }
      std::thread([s, req, writer] {
        s->forward(req, writer);
        std::lock_guard lock(s->mutex);
        --s->in_flight;
        s->idle.notify_all();
      }).detach();
    };
    return res;
  }));
  state->server = std::move(server);
  state->server->start();
  log::info("agent: the API is forwarded from " + state->server->address() + " to " +
            state->options.leader);
  return std::unique_ptr<ApiForwarder>(new ApiForwarder(std::move(state)));
}

ApiForwarder::ApiForwarder(std::shared_ptr<State> state) : state_(std::move(state)) {}

ApiForwarder::~ApiForwarder() { stop(); }

std::string ApiForwarder::address() const { return state_->server->address(); }

void ApiForwarder::stop() {
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopping) return;
    state_->stopping = true;
  }
  state_->cancel->cancel();  // forwards in flight end now
  state_->server->stop(std::chrono::seconds(2));
  std::unique_lock lock(state_->mutex);
  state_->idle.wait(lock, [this] { return state_->in_flight == 0; });
}

}  // namespace mill::agent
