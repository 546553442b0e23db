#include "network/firewall.h"

#include "common/command.h"
#include "common/files.h"
#include "common/log.h"

namespace mill::network {
namespace {

std::vector<std::string> iptables_rule(const char* op, const char* dir, const std::string& bridge) {
  return {"iptables",       "-w", "5",     op, "FORWARD", dir, bridge, "-m", "comment", "--comment",
          "mill " + bridge, "-j", "ACCEPT"};
}

Result<void> run_nft(const std::string& script) {
  auto r = MILL_TRY(run_command({"nft", "-f", "-"}, script));
  if (r.exit_code != 0) return make_error(ErrorCode::kIo, "nft failed: " + r.output);
  return {};
}

// Whether an iptables filter table exists, in either backend: only then can a FORWARD
// policy drop our traffic, and only then do we add rules (adding them would create it).
bool iptables_filter_exists() {
  auto nft = run_command({"nft", "list", "table", "ip", "filter"});
  if (nft && nft->exit_code == 0) return true;
  auto legacy = read_file("/proc/net/ip_tables_names");
  return legacy && ("\n" + *legacy).find("\nfilter\n") != std::string::npos;
}

bool iptables_rule_present(const char* dir, const std::string& bridge) {
  auto r = run_command(iptables_rule("-C", dir, bridge));
  return r && r->exit_code == 0;
}

}  // namespace

std::string nft_table_name(const std::string& bridge) {
  std::string name = "mill_";
  for (char c : bridge) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    name += ok ? c : '_';
  }
  return name;
}

namespace {

// The input chain's rules (firewall.h): from the bridge, only replies, DNS and the
// allowed ports reach the node.
std::string input_rules(const FirewallSpec& spec, const std::string& br) {
  const std::string from = "    iifname " + br + " ";
  const std::string dns = "ip daddr " + format_ipv4(spec.node.addr + 1) + " ";
  const std::string dns_port = std::to_string(spec.dns_port);
  std::string out = from + "ct state established,related accept\n";
  out += from + dns + "udp dport " + dns_port + " accept\n";
  out += from + dns + "tcp dport " + dns_port + " accept\n";
  for (const auto& p : spec.allowed) {
    std::string ports = std::to_string(p.first);
    if (p.last != p.first) ports += "-" + std::to_string(p.last);
    out += from + p.protocol + " dport " + ports + " accept\n";
  }
  out += from + "meta l4proto tcp reject with tcp reset\n";
  out += from + "reject with icmp type admin-prohibited\n";
  return out;
}

}  // namespace

std::string nft_ruleset(const FirewallSpec& spec) {
  std::string table = "ip " + nft_table_name(spec.bridge);
  std::string br = "\"" + spec.bridge + "\"";
  // "add, delete, define" in one transaction: idempotent and never half-applied.
  return "table " + table + " {}\n" +      //
         "delete table " + table + "\n" +  //
         "table " + table + " {\n" +       //
         "  chain forward {\n"             //
         "    type filter hook forward priority filter; policy accept;\n" +
         "    iifname " + br + " accept\n" +  //
         "    oifname " + br + " accept\n" +  //
         "  }\n"                              //
         "  chain input {\n"                  //
         "    type filter hook input priority filter; policy accept;\n" +
         input_rules(spec, br) +    //
         "  }\n"                    //
         "  chain postrouting {\n"  //
         "    type nat hook postrouting priority srcnat; policy accept;\n" +
         "    ip saddr " + spec.node.str() + " ip daddr != " + spec.cluster.str() +
         " oifname != " + br + " masquerade\n" +  //
         "  }\n"                                  //
         "}\n";
}

std::string nft_delete_script(const std::string& bridge) {
  std::string table = "ip " + nft_table_name(bridge);
  return "table " + table + " {}\ndelete table " + table + "\n";
}

Result<void> install_firewall(const FirewallSpec& spec) {
  MILL_TRY(run_nft(nft_ruleset(spec)));
  if (!iptables_filter_exists()) return {};
  for (const char* dir : {"-i", "-o"}) {
    if (iptables_rule_present(dir, spec.bridge)) continue;
    auto r = run_command(iptables_rule("-I", dir, spec.bridge));
    if (!r) {
      log::debug("network: no iptables (" + r.error().message + "); nftables rules only");
      break;
    }
    if (r->exit_code != 0) log::warn("network: iptables FORWARD accept rule failed: " + r->output);
  }
  return {};
}

Result<void> remove_firewall(const std::string& bridge) {
  MILL_TRY(run_nft(nft_delete_script(bridge)));
  if (!iptables_filter_exists()) return {};
  for (const char* dir : {"-i", "-o"}) {
    // -D removes one copy; loop in case a crash between -C and -I ever left two.
    for (int i = 0; i < 8 && iptables_rule_present(dir, bridge); ++i) {
      auto r = run_command(iptables_rule("-D", dir, bridge));
      if (!r || r->exit_code != 0) break;
    }
  }
  return {};
}

}  // namespace mill::network
