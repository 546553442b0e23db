#include "common/command.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

extern char** environ;

namespace mill {
namespace {

constexpr size_t kMaxOutput = 64 * 1024;

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Writes `input` to `in_fd` while draining `out_fd`, so neither side can block the other.
void pump(int& in_fd, int& out_fd, const std::string& input, std::string& output) {
  size_t written = 0;
  if (input.empty()) close_fd(in_fd);
  char buf[4096];
  while (out_fd >= 0) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    int n = ::poll(fds, in_fd >= 0 ? 2 : 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (in_fd >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = ::write(in_fd, input.data() + written, input.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 && errno != EINTR && errno != EAGAIN) written = input.size();
      if (written == input.size()) close_fd(in_fd);
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = ::read(out_fd, buf, sizeof buf);
      if (r > 0) {
        if (output.size() < kMaxOutput) {
          output.append(buf, std::min(static_cast<size_t>(r), kMaxOutput - output.size()));
        }
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        close_fd(out_fd);
      }
    }
  }
  close_fd(in_fd);
}

}  // namespace

Result<CommandResult> run_command(const std::vector<std::string>& argv, const std::string& input) {
  if (argv.empty()) return make_error(ErrorCode::kInvalidArgument, "empty command");
  int in_pipe[2];
  int out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return make_error(ErrorCode::kIo, "pipe failed");
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    return make_error(ErrorCode::kIo, "pipe failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int err = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (err != 0) {
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    return make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                      argv[0] + ": " + strerror(err));
  }
  // A child that exits before reading all its input must not kill us with SIGPIPE;
  // MSG_NOSIGNAL does not apply to pipes, so block it for this thread meanwhile.
  sigset_t pipe_set;
  sigset_t old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  CommandResult result;
  int in_fd = in_pipe[1];
  int out_fd = out_pipe[0];
  pump(in_fd, out_fd, input, result.output);
  // Consume a SIGPIPE we may have raised before unblocking, so it is not delivered.
  timespec zero{0, 0};
  while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace mill
