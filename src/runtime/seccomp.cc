#include "runtime/seccomp.h"

#include <boost/json/array.hpp>
#include <cerrno>

namespace mill::runtime {
namespace {

// Syscalls a container has no business making. Each is either privileged (the
// container lacks the capability anyway: defence in depth) or widens the kernel's
// attack surface for little use (bpf, perf_event_open, userfaultfd, io_uring).
constexpr const char* kDenied[] = {
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
};

boost::json::array architectures() {
#if defined(__x86_64__)
  return {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
#elif defined(__aarch64__)
  return {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
#else
  return {};
#endif
}

}  // namespace

boost::json::object default_seccomp_profile() {
  boost::json::array names;
  for (const char* n : kDenied) names.emplace_back(n);
  boost::json::object deny{
      {"names", std::move(names)}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", EPERM}};
  return {{"defaultAction", "SCMP_ACT_ALLOW"},
          {"architectures", architectures()},
          {"syscalls", boost::json::array{std::move(deny)}}};
}

}  // namespace mill::runtime
