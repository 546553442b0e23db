#include "runtime/oci_spec.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <csignal>

namespace mill::runtime {
namespace {

namespace json = boost::json;
using Strings = std::vector<std::string>;

ContainerSpec base_spec() {
  ContainerSpec s;
  s.id = "web-1";
  s.rootfs = "/var/lib/mill/rootfs/web-1";
  s.hostname = "web-1";
  return s;
}

json::object build(const model::ImageConfig& image, const ContainerSpec& spec) {
  auto text = build_oci_config(image, spec);
  EXPECT_TRUE(text) << text.error().to_string();
  return text ? json::parse(*text).as_object() : json::object{};
}

Strings strings_at(const json::value& v) {
  Strings out;
  for (const auto& s : v.as_array()) out.emplace_back(s.as_string());
  return out;
}

// Docker's entrypoint/cmd rules, case by case.
TEST(MergedArgs, FollowsDockerRules) {
  struct Case {
    const char* name;
    Strings image_entrypoint, image_cmd, entrypoint, command, want;
  };
  const Case cases[] = {
      {"image only", {"/app"}, {"--serve"}, {}, {}, {"/app", "--serve"}},
      {"cmd only image", {}, {"sh", "-c", "x"}, {}, {}, {"sh", "-c", "x"}},
      {"command replaces cmd", {"/app"}, {"--serve"}, {}, {"--once"}, {"/app", "--once"}},
      {"entrypoint drops image cmd", {"/app"}, {"--serve"}, {"/other"}, {}, {"/other"}},
      {"entrypoint and command", {"/app"}, {"--serve"}, {"/other"}, {"-v"}, {"/other", "-v"}},
      {"command without image entrypoint", {}, {"sh"}, {}, {"echo", "hi"}, {"echo", "hi"}},
      {"nothing", {}, {}, {}, {}, {}},
      {"a blank image entrypoint is none", {""}, {"sh"}, {}, {}, {"sh"}},
      {"a blank image entrypoint, a command", {""}, {"sh"}, {}, {"echo"}, {"echo"}},
  };
  for (const auto& c : cases) {
    model::ImageConfig image;
    image.entrypoint = c.image_entrypoint;
    image.cmd = c.image_cmd;
    ContainerSpec spec = base_spec();
    spec.entrypoint = c.entrypoint;
    spec.command = c.command;
    EXPECT_EQ(merged_args(image, spec), c.want) << c.name;
  }
}

TEST(MergedEnv, SpecOverridesByKeyKeepsOrderAndDefaultsPath) {
  model::ImageConfig image;
  image.env = {"A=1", "B=2", "EMPTY="};
  ContainerSpec spec = base_spec();
  spec.env = {{"B", "two"}, {"C", "3"}};
  EXPECT_EQ(merged_env(image, spec),
            (Strings{"A=1", "B=two",
                     "EMPTY=", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     "C=3", "HOSTNAME=web-1"}));
}

TEST(MergedEnv, ImagePathIsKept) {
  model::ImageConfig image;
  image.env = {"PATH=/opt/bin"};
  ContainerSpec spec = base_spec();
  spec.hostname.clear();
  EXPECT_EQ(merged_env(image, spec), Strings{"PATH=/opt/bin"});
  spec.env = {{"PATH", "/x"}};
  EXPECT_EQ(merged_env(image, spec), Strings{"PATH=/x"});
}

TEST(BuildOciConfig, ProcessWithInitUserCwdAndSecurity) {
  model::ImageConfig image;
  image.entrypoint = {"/app"};
  image.working_dir = "/srv";
  image.user = "1000:1001";
  auto c = build(image, base_spec());
  const auto& p = c.at("process").as_object();
  EXPECT_EQ(strings_at(p.at("args")), (Strings{"/sbin/mill-init", "--", "/app"}));
  EXPECT_EQ(p.at("cwd").as_string(), "/srv");
  EXPECT_EQ(p.at("user").at("uid").as_int64(), 1000);
  EXPECT_EQ(p.at("user").at("gid").as_int64(), 1001);
  EXPECT_EQ(p.at("terminal").as_bool(), false);
  EXPECT_EQ(p.at("noNewPrivileges").as_bool(), true);
  auto caps = strings_at(p.at("capabilities").at("bounding"));
  EXPECT_EQ(caps.size(), 14u);
  EXPECT_NE(std::find(caps.begin(), caps.end(), "CAP_NET_BIND_SERVICE"), caps.end());
  EXPECT_EQ(std::find(caps.begin(), caps.end(), "CAP_SYS_ADMIN"), caps.end());
  EXPECT_EQ(strings_at(p.at("capabilities").at("effective")), caps);
  EXPECT_EQ(c.at("hostname").as_string(), "web-1");
  EXPECT_EQ(c.at("root").at("path").as_string(), "/var/lib/mill/rootfs/web-1");

  bool init_bound = false;
  for (const auto& m : c.at("mounts").as_array()) {
    if (m.at("destination") == "/sbin/mill-init") {
      init_bound = m.at("source") == "/usr/bin/tini-static";
      auto opts = strings_at(m.at("options"));
      EXPECT_NE(std::find(opts.begin(), opts.end(), "ro"), opts.end());
    }
  }
  EXPECT_TRUE(init_bound);
}

TEST(BuildOciConfig, WithoutInitTheAppIsTheProcessAndDefaultsApply) {
  model::ImageConfig image;
  image.cmd = {"sh"};
  ContainerSpec spec = base_spec();
  spec.init = false;
  spec.working_dir = "/tmp";
  spec.user = std::pair<uint32_t, uint32_t>{7, 8};
  auto c = build(image, spec);
  const auto& p = c.at("process").as_object();
  EXPECT_EQ(strings_at(p.at("args")), Strings{"sh"});
  EXPECT_EQ(p.at("cwd").as_string(), "/tmp");
  EXPECT_EQ(p.at("user").at("uid").as_int64(), 7);
  for (const auto& m : c.at("mounts").as_array()) {
    EXPECT_NE(m.at("destination"), "/sbin/mill-init");
  }
  spec.working_dir.clear();
  EXPECT_EQ(build(image, spec).at("process").at("cwd").as_string(), "/");
}

TEST(BuildOciConfig, LimitsNamespacesCgroupAndFiles) {
  model::ImageConfig image;
  image.cmd = {"sh"};
  ContainerSpec spec = base_spec();
  spec.cpu = 0.5;
  spec.memory_bytes = 64 << 20;
  spec.pids_limit = 100;
  spec.netns_path = "/run/netns/web-1";
  spec.hosts_path = "/state/hosts";
  spec.resolv_conf_path = "/state/resolv.conf";
  spec.mounts = {{"/data/vol", "/data", false}};
  auto c = build(image, spec);
  const auto& linux = c.at("linux").as_object();
  EXPECT_EQ(linux.at("resources").at("memory").at("limit").as_int64(), 64 << 20);
  EXPECT_EQ(linux.at("resources").at("cpu").at("quota").as_int64(), 50000);
  EXPECT_EQ(linux.at("resources").at("cpu").at("period").as_int64(), 100000);
  EXPECT_EQ(linux.at("resources").at("pids").at("limit").as_int64(), 100);
  EXPECT_EQ(linux.at("cgroupsPath").as_string(), "/mill/web-1");
  Strings types;
  for (const auto& ns : linux.at("namespaces").as_array()) {
    types.emplace_back(ns.at("type").as_string());
    if (ns.at("type") == "network") {
      EXPECT_EQ(ns.at("path"), "/run/netns/web-1");
    }
  }
  EXPECT_EQ(types, (Strings{"pid", "mount", "ipc", "uts", "network"}));
  auto masked = strings_at(linux.at("maskedPaths"));
  EXPECT_NE(std::find(masked.begin(), masked.end(), "/proc/kcore"), masked.end());
  auto ro = strings_at(linux.at("readonlyPaths"));
  EXPECT_NE(std::find(ro.begin(), ro.end(), "/proc/sys"), ro.end());
  EXPECT_EQ(linux.at("seccomp").at("defaultAction"), "SCMP_ACT_ALLOW");

  std::map<std::string, std::pair<std::string, bool>> binds;
  for (const auto& m : c.at("mounts").as_array()) {
    if (m.at("type") != "bind") continue;
    auto opts = strings_at(m.at("options"));
    binds[std::string(m.at("destination").as_string())] = {
        std::string(m.at("source").as_string()),
        std::find(opts.begin(), opts.end(), "ro") != opts.end()};
  }
  EXPECT_EQ(binds["/etc/hosts"], (std::pair<std::string, bool>{"/state/hosts", true}));
  EXPECT_EQ(binds["/etc/resolv.conf"], (std::pair<std::string, bool>{"/state/resolv.conf", true}));
  EXPECT_EQ(binds.count("/etc/hostname"), 0u);
  EXPECT_EQ(binds["/data"], (std::pair<std::string, bool>{"/data/vol", false}));

  spec.cpu = 0;
  spec.memory_bytes = 0;
  spec.pids_limit = 0;
  spec.netns_path.clear();
  auto unlimited = build(image, spec);
  const auto& r = unlimited.at("linux").at("resources").as_object();
  EXPECT_FALSE(r.contains("memory") || r.contains("cpu") || r.contains("pids"));
  for (const auto& ns : unlimited.at("linux").at("namespaces").as_array()) {
    EXPECT_FALSE(ns.as_object().contains("path"));
  }
}

TEST(BuildOciConfig, StopSignalAnnotation) {
  model::ImageConfig image;
  image.cmd = {"sh"};
  EXPECT_EQ(build(image, base_spec()).at("annotations").at(kStopSignalAnnotation), "15");
  image.stop_signal = "SIGQUIT";
  EXPECT_EQ(build(image, base_spec()).at("annotations").at(kStopSignalAnnotation), "3");
  image.stop_signal = "SIGNOPE";
  EXPECT_FALSE(build_oci_config(image, base_spec()));
}

TEST(BuildOciConfig, RejectsWhatCannotRun) {
  model::ImageConfig image;
  image.cmd = {"sh"};
  ContainerSpec spec = base_spec();
  spec.id = "Bad_Id";
  EXPECT_EQ(build_oci_config(image, spec).error().code, ErrorCode::kInvalidArgument);
  spec = base_spec();
  spec.rootfs = "relative";
  EXPECT_FALSE(build_oci_config(image, spec));
  EXPECT_FALSE(build_oci_config(model::ImageConfig{}, base_spec()));  // nothing to run
  // An image whose entrypoint is an empty string and that has no cmd: said, not
  // left to fail as "exec  failed" inside the container.
  model::ImageConfig blank;
  blank.entrypoint = {""};
  auto empty = build_oci_config(blank, base_spec());
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("entrypoint is empty"), std::string::npos)
      << empty.error().message;
  blank.entrypoint = {"", "--flag"};
  empty = build_oci_config(blank, base_spec());
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("entrypoint is empty"), std::string::npos)
      << empty.error().message;
  image.user = "nginx";  // a name needs resolve_user first
  auto r = build_oci_config(image, base_spec());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("nginx"), std::string::npos);
  image.user = "101";
  auto c = build(image, base_spec());
  EXPECT_EQ(c.at("process").at("user").at("uid").as_int64(), 101);
  EXPECT_EQ(c.at("process").at("user").at("gid").as_int64(), 0);
}

TEST(ParseSignal, NamesAndNumbers) {
  EXPECT_EQ(*parse_signal("SIGTERM"), SIGTERM);
  EXPECT_EQ(*parse_signal("KILL"), SIGKILL);
  EXPECT_EQ(*parse_signal("10"), 10);
  EXPECT_FALSE(parse_signal(""));
  EXPECT_FALSE(parse_signal("0"));
  EXPECT_FALSE(parse_signal("SIGFOO"));
}

TEST(ValidContainerId, Charset) {
  EXPECT_TRUE(valid_container_id("web-1"));
  EXPECT_TRUE(valid_container_id(std::string(64, 'a')));
  EXPECT_FALSE(valid_container_id(std::string(65, 'a')));
  EXPECT_FALSE(valid_container_id(""));
  EXPECT_FALSE(valid_container_id("-x"));
  EXPECT_FALSE(valid_container_id("a/b"));
  EXPECT_FALSE(valid_container_id(".."));
  EXPECT_FALSE(valid_container_id("A"));
}

}  // namespace
}  // namespace mill::runtime
