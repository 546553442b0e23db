#pragma once

// Mill's default seccomp profile (PURE). A deny-list: every syscall is allowed except
// the ones Docker's default profile withholds from containers without CAP_SYS_ADMIN
// and friends (kernel modules, kexec, mount, namespaces, keyrings, bpf, perf, ptrace,
// clock setting, swap, reboot, io_uring ...), which fail with EPERM. A deny-list keeps
// working when the kernel gains syscalls; see README.md for the trade-off.

#include <boost/json/object.hpp>

namespace mill::runtime {

boost::json::object default_seccomp_profile();

}  // namespace mill::runtime
