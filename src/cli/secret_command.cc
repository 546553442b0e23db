// mill secret set|get|ls|rm.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>
#include <iterator>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "model/json.h"
#include "net/http.h"

namespace mill::cli {

namespace json = boost::json;

namespace {

// Secret names go into the path; escape anything that is not plainly safe so the
// server sees exactly the name typed (and rejects it if it is invalid).
std::string escape_segment(const std::string& name) {
  std::string out;
  const char* hex = "0123456789ABCDEF";
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

void add_secret_command(CLI::App& app, int& exit_code) {
  auto* secret = app.add_subcommand("secret", "Manage secrets (values encrypted at rest)");
  secret->require_subcommand(1);

  struct Args {
    std::string name;
    std::string value;
    bool json = false;
  };
  auto args = std::make_shared<Args>();

  auto* set = secret->add_subcommand("set", "Set a secret: VALUE, or '-' / nothing to read stdin");
  set->add_option("name", args->name, "Secret name")->required();
  set->add_option("value", args->value, "Value, or '-' for stdin");
  set->callback([args, set, &exit_code] {
    std::string value = args->value;
    if (set->count("value") == 0 || value == "-") {
      if (isatty(STDIN_FILENO)) std::cerr << "Reading the value from stdin (end with Ctrl-D)\n";
      value.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
      // `echo value | mill secret set x -` should store "value", not "value\n".
      if (value.ends_with("\n")) value.pop_back();
      if (value.ends_with("\r")) value.pop_back();
    }
    json::object body{{"value", value}};
    auto r = call_api(load_client_config(), "PUT", "/v1/secrets/" + escape_segment(args->name),
                      model::serialize(body));
    if (!r) {
      exit_code = fail(r.error().message);
      return;
    }
    std::cout << "secret " << args->name << " set\n";
  });

  auto* get = secret->add_subcommand("get", "Print a secret's value");
  get->add_option("name", args->name, "Secret name")->required();
  get->add_flag("--json", args->json, "Print the API's JSON");
  get->callback([args, &exit_code] {
    auto v =
        call_api_json(load_client_config(), "GET", "/v1/secrets/" + escape_segment(args->name));
    if (!v) {
      exit_code = fail(v.error().message);
      return;
    }
    if (args->json) {
      std::cout << model::serialize(*v) << "\n";
    } else {
      std::cout << v->as_object().at("value").as_string().c_str() << "\n";
    }
  });

  auto* ls = secret->add_subcommand("ls", "List secret names (never values)");
  ls->alias("list");
  ls->add_flag("--json", args->json, "Print the API's JSON");
  ls->callback([args, &exit_code] {
    auto v = call_api_json(load_client_config(), "GET", "/v1/secrets");
    if (!v) {
      exit_code = fail(v.error().message);
      return;
    }
    if (args->json) {
      std::cout << model::serialize(*v) << "\n";
      return;
    }
    Table t({"NAME", "UPDATED"});
    for (const auto& s : v->as_array()) {
      const auto& o = s.as_object();
      t.add({std::string(o.at("name").as_string()), std::string(o.at("updated_at").as_string())});
    }
    t.print(std::cout);
  });

  auto* rm = secret->add_subcommand("rm", "Delete a secret");
  rm->alias("delete");
  rm->add_option("name", args->name, "Secret name")->required();
  rm->callback([args, &exit_code] {
    auto r = call_api(load_client_config(), "DELETE", "/v1/secrets/" + escape_segment(args->name));
    if (!r) {
      exit_code = fail(r.error().message);
      return;
    }
    std::cout << "secret " << args->name << " deleted\n";
  });
}

}  // namespace mill::cli
