#include "network/netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <utility>

namespace mill::network {
namespace {

constexpr size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

// Builds one netlink request in a byte string: header, fixed struct, attributes.
class Request {
 public:
  Request(uint16_t type, uint16_t flags) {
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = static_cast<uint16_t>(flags | NLM_F_REQUEST | NLM_F_ACK);
    raw(&h, sizeof h);
  }
  template <class T>
  void fixed(const T& s) {
    raw(&s, sizeof s);
  }
  void attr(uint16_t type, const void* data, size_t len) {
    rtattr a{};
    a.rta_type = type;
    a.rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    raw(&a, sizeof a);
    raw(data, len);
  }
  void attr_str(uint16_t type, const std::string& s) { attr(type, s.c_str(), s.size() + 1); }
  void attr_u32(uint16_t type, uint32_t v) { attr(type, &v, sizeof v); }
  // IPv4 addresses travel in network byte order.
  void attr_ip(uint16_t type, uint32_t host_order) { attr_u32(type, htonl(host_order)); }
  size_t nest_begin(uint16_t type) {
    size_t at = buf_.size();
    rtattr a{};
    a.rta_type = type;
    raw(&a, sizeof a);
    return at;
  }
  void nest_end(size_t at) {
    auto len = static_cast<uint16_t>(buf_.size() - at);
    std::memcpy(buf_.data() + at + offsetof(rtattr, rta_len), &len, sizeof len);
  }
  std::string& finish() {
    auto len = static_cast<uint32_t>(buf_.size());
    std::memcpy(buf_.data() + offsetof(nlmsghdr, nlmsg_len), &len, sizeof len);
    return buf_;
  }

 private:
  void raw(const void* data, size_t len) {
    buf_.append(static_cast<const char*>(data), len);
    buf_.resize(align4(buf_.size()), '\0');
  }
  std::string buf_;
};

ErrorCode code_for(int err) {
  switch (err) {
    case EEXIST:
      return ErrorCode::kAlreadyExists;
    case ENODEV:
    case ENOENT:
    case ESRCH:
      return ErrorCode::kNotFound;
    case EINVAL:
    case ERANGE:
      return ErrorCode::kInvalidArgument;
    default:
      return ErrorCode::kIo;
  }
}

// The kernel's extended-ack text, when it attached one to an error.
std::string ext_ack_message(nlmsghdr* h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) {
    // The whole request is echoed after the error; the attributes follow it.
    const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
    off += align4(e->msg.nlmsg_len) - sizeof(nlmsghdr);
  }
  while (off + sizeof(nlattr) <= h->nlmsg_len) {
    nlattr a;
    std::memcpy(&a, reinterpret_cast<const char*>(h) + off, sizeof a);
    if (a.nla_len < sizeof a || off + a.nla_len > h->nlmsg_len) break;
    if (a.nla_type == NLMSGERR_ATTR_MSG) {
      const char* s = reinterpret_cast<const char*>(h) + off + sizeof a;
      return std::string(s, strnlen(s, a.nla_len - sizeof a));
    }
    off += align4(a.nla_len);
  }
  return "";
}

}  // namespace

Result<NetlinkSocket> NetlinkSocket::open() {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return make_error(ErrorCode::kIo, std::string("netlink socket: ") + strerror(errno));
  NetlinkSocket sock(fd);
  int one = 1;
  // Best effort: extended acks give the kernel's reason; capped acks keep them short.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  // The kernel answers synchronously; the timeout only guards against a bug of ours.
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    return make_error(ErrorCode::kIo, std::string("netlink bind: ") + strerror(errno));
  }
  return sock;
}

NetlinkSocket::NetlinkSocket(NetlinkSocket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), seq_(other.seq_) {}

NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    seq_ = other.seq_;
  }
  return *this;
}

NetlinkSocket::~NetlinkSocket() {
  if (fd_ >= 0) ::close(fd_);
}

Result<uint32_t> NetlinkSocket::send(std::string& msg, const std::string& what) {
  uint32_t seq = ++seq_;
  std::memcpy(msg.data() + offsetof(nlmsghdr, nlmsg_seq), &seq, sizeof seq);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd_, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) < 0) {
    return make_error(ErrorCode::kIo, what + ": netlink send: " + strerror(errno));
  }
  return seq;
}

Result<void> NetlinkSocket::transact(std::string& msg, const std::string& what,
                                     std::string* reply) {
  uint32_t seq = MILL_TRY(send(msg, what));
  alignas(nlmsghdr) static thread_local char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kIo, what + ": netlink recv: " + strerror(errno));
    }
    auto len = static_cast<unsigned>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;  // a stale answer to an earlier request
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        if (e->error == 0) return {};
        std::string detail = ext_ack_message(h);
        return make_error(code_for(-e->error), what + ": " + strerror(-e->error) +
                                                   (detail.empty() ? "" : " (" + detail + ")"));
      }
      if (reply != nullptr && reply->empty())
        reply->assign(reinterpret_cast<char*>(h), h->nlmsg_len);
    }
  }
}

Result<int> NetlinkSocket::link_index(const std::string& name) {
  Request req(RTM_GETLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  req.fixed(ifi);
  req.attr_str(IFLA_IFNAME, name);
  std::string reply;
  MILL_TRY(transact(req.finish(), "get link " + name, &reply));
  if (reply.size() < NLMSG_HDRLEN + sizeof(ifinfomsg)) {
    return make_error(ErrorCode::kIo, "get link " + name + ": short reply");
  }
  ifinfomsg got;
  std::memcpy(&got, reply.data() + NLMSG_HDRLEN, sizeof got);
  return got.ifi_index;
}

Result<bool> NetlinkSocket::link_ready(int index) {
  Request req(RTM_GETLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = index;
  req.fixed(ifi);
  std::string reply;
  MILL_TRY(transact(req.finish(), "get link " + std::to_string(index), &reply));
  constexpr size_t kFixed = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifinfomsg));
  if (reply.size() < kFixed) return make_error(ErrorCode::kIo, "get link: short reply");
  ifinfomsg got;
  std::memcpy(&got, reply.data() + NLMSG_HDRLEN, sizeof got);
  if ((got.ifi_flags & IFF_RUNNING) == 0) return false;
  for (size_t at = kFixed; at + sizeof(rtattr) <= reply.size();) {
    rtattr a;
    std::memcpy(&a, reply.data() + at, sizeof a);
    if (a.rta_len < sizeof a || at + a.rta_len > reply.size()) break;
    if (a.rta_type == IFLA_QDISC) {
      std::string qdisc(reply.data() + at + RTA_LENGTH(0), a.rta_len - RTA_LENGTH(0));
      return qdisc.c_str() != std::string("noop");
    }
    at += RTA_ALIGN(a.rta_len);
  }
  return true;
}

Result<void> NetlinkSocket::create_bridge(const std::string& name, const uint8_t (&mac)[6]) {
  Request req(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg ifi{};
  req.fixed(ifi);
  req.attr_str(IFLA_IFNAME, name);
  req.attr(IFLA_ADDRESS, mac, 6);
  size_t info = req.nest_begin(IFLA_LINKINFO);
  req.attr_str(IFLA_INFO_KIND, "bridge");
  req.nest_end(info);
  return transact(req.finish(), "create bridge " + name);
}

Result<void> NetlinkSocket::create_veth(const std::string& host_name, int master_index,
                                        const std::string& peer_name, const uint8_t (&peer_mac)[6],
                                        int netns_fd) {
  Request req(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg ifi{};
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  req.fixed(ifi);
  req.attr_str(IFLA_IFNAME, host_name);
  req.attr_u32(IFLA_MASTER, static_cast<uint32_t>(master_index));
  size_t info = req.nest_begin(IFLA_LINKINFO);
  req.attr_str(IFLA_INFO_KIND, "veth");
  size_t data = req.nest_begin(IFLA_INFO_DATA);
  size_t peer = req.nest_begin(VETH_INFO_PEER);
  // The peer cannot be brought up in this request: veth_open() fails with ENOTCONN
  // until both halves exist. The caller sets it up from inside the netns.
  ifinfomsg peer_ifi{};
  req.fixed(peer_ifi);
  req.attr_str(IFLA_IFNAME, peer_name);
  req.attr(IFLA_ADDRESS, peer_mac, 6);
  req.attr_u32(IFLA_NET_NS_FD, static_cast<uint32_t>(netns_fd));
  req.nest_end(peer);
  req.nest_end(data);
  req.nest_end(info);
  return transact(req.finish(), "create veth " + host_name);
}

Result<void> NetlinkSocket::set_up(int index) {
  Request req(RTM_NEWLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_index = index;
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  req.fixed(ifi);
  return transact(req.finish(), "set link " + std::to_string(index) + " up");
}

Result<void> NetlinkSocket::delete_link(const std::string& name) {
  Request req(RTM_DELLINK, 0);
  ifinfomsg ifi{};
  req.fixed(ifi);
  req.attr_str(IFLA_IFNAME, name);
  return transact(req.finish(), "delete link " + name);
}

Result<void> NetlinkSocket::add_address(int index, uint32_t addr, int prefix) {
  Request req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  ifa.ifa_prefixlen = static_cast<uint8_t>(prefix);
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<uint32_t>(index);
  req.fixed(ifa);
  req.attr_ip(IFA_LOCAL, addr);
  req.attr_ip(IFA_ADDRESS, addr);
  uint32_t host_mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  if (prefix < 31) req.attr_ip(IFA_BROADCAST, addr | ~host_mask);
  return transact(req.finish(), "add address to link " + std::to_string(index));
}

namespace {
rtmsg route_header(uint8_t type, int dst_len) {
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  rt.rtm_dst_len = static_cast<uint8_t>(dst_len);
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = RTPROT_BOOT;
  rt.rtm_scope = RT_SCOPE_UNIVERSE;
  rt.rtm_type = type;
  return rt;
}
}  // namespace

Result<void> NetlinkSocket::add_default_route(int index, uint32_t gateway) {
  Request req(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  req.fixed(route_header(RTN_UNICAST, 0));
  req.attr_ip(RTA_GATEWAY, gateway);
  req.attr_u32(RTA_OIF, static_cast<uint32_t>(index));
  return transact(req.finish(), "add default route");
}

Result<void> NetlinkSocket::add_unreachable_route(uint32_t dst, int prefix) {
  Request req(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
  req.fixed(route_header(RTN_UNREACHABLE, prefix));
  req.attr_ip(RTA_DST, dst);
  return transact(req.finish(), "add unreachable route");
}

Result<void> NetlinkSocket::delete_unreachable_route(uint32_t dst, int prefix) {
  Request req(RTM_DELROUTE, 0);
  rtmsg rt = route_header(RTN_UNREACHABLE, prefix);
  rt.rtm_protocol = 0;  // any protocol; the type still has to be unreachable
  rt.rtm_scope = RT_SCOPE_NOWHERE;
  req.fixed(rt);
  req.attr_ip(RTA_DST, dst);
  return transact(req.finish(), "delete unreachable route");
}

Result<std::vector<RouteEntry>> NetlinkSocket::main_routes() {
  Request req(RTM_GETROUTE, NLM_F_DUMP);
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  req.fixed(rt);
  uint32_t seq = MILL_TRY(send(req.finish(), "list routes"));
  std::vector<RouteEntry> out;
  alignas(nlmsghdr) static thread_local char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kIo,
                        std::string("list routes: netlink recv: ") + strerror(errno));
    }
    auto len = static_cast<unsigned>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return out;
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        if (e->error == 0) continue;
        return make_error(code_for(-e->error), std::string("list routes: ") + strerror(-e->error));
      }
      if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) continue;
      const auto* r = static_cast<const rtmsg*>(NLMSG_DATA(h));
      if (r->rtm_family != AF_INET || r->rtm_table != RT_TABLE_MAIN) continue;
      RouteEntry e;
      e.prefix = r->rtm_dst_len;
      e.type = r->rtm_type;
      int attr_len = static_cast<int>(RTM_PAYLOAD(h));
      for (auto* a = RTM_RTA(r); RTA_OK(a, attr_len); a = RTA_NEXT(a, attr_len)) {
        if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) == 4) {
          uint32_t v;
          std::memcpy(&v, RTA_DATA(a), 4);
          e.dst = ntohl(v);
        } else if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) == 4) {
          uint32_t v;
          std::memcpy(&v, RTA_DATA(a), 4);
          e.oif = static_cast<int>(v);
        }
      }
      out.push_back(e);
    }
  }
}

}  // namespace mill::network
