#include "runtime/log_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cerrno>
#include <cstring>

#include "runtime/shim_protocol.h"

namespace mill::runtime {
namespace {

namespace json = boost::json;

struct LogFile {
  std::string path;
  uint64_t inode = 0;
};

// The files of a log dir, oldest first: current.jsonl.K .. .1, current.jsonl.
std::vector<LogFile> log_files(const std::string& dir) {
  std::vector<LogFile> files;
  std::string base = dir + "/" + std::string(shim::kLogFile);
  for (int i = 1;; ++i) {
    std::string path = base + "." + std::to_string(i);
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) break;
    files.push_back({path, st.st_ino});
  }
  std::reverse(files.begin(), files.end());
  struct stat st {};
  if (stat(base.c_str(), &st) == 0) files.push_back({base, st.st_ino});
  return files;
}

// Reads file `f` from `offset` to its end; kNotFound if it vanished or the path now
// names another file (a rotation happened since it was listed).
Result<std::string> read_from(const LogFile& f, uint64_t offset) {
  int fd = open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return make_error(ErrorCode::kNotFound, "no file " + f.path);
    return make_error(ErrorCode::kIo, "cannot open " + f.path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_ino != f.inode) {
    close(fd);
    return make_error(ErrorCode::kNotFound, "rotated: " + f.path);
  }
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = pread(fd, buf, sizeof buf, static_cast<off_t>(offset + out.size()))) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

size_t complete_length(std::string_view text) {
  size_t nl = text.rfind('\n');
  return nl == std::string_view::npos ? 0 : nl + 1;
}

}  // namespace

std::vector<LogLine> parse_log_records(std::string_view text) {
  std::vector<LogLine> out;
  size_t start = 0;
  while (true) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) break;
    boost::system::error_code ec;
    json::value v = json::parse(text.substr(start, nl - start), ec);
    start = nl + 1;
    if (ec || !v.is_object()) continue;
    const auto& o = v.as_object();
    auto* ts = o.if_contains("ts");
    auto* stream = o.if_contains("stream");
    auto* line = o.if_contains("line");
    if (!ts || !stream || !line || !ts->is_string() || !stream->is_string() || !line->is_string()) {
      continue;
    }
    out.push_back({std::string(ts->as_string()), std::string(stream->as_string()),
                   std::string(line->as_string())});
  }
  return out;
}

Result<std::vector<LogLine>> read_logs(const std::string& log_dir) {
  return LogCursor::at_start(log_dir).next();
}

Result<std::vector<LogLine>> tail_logs(const std::string& log_dir, size_t n) {
  // Newest file first, until enough lines are found.
  auto files = log_files(log_dir);
  std::vector<LogLine> out;
  for (auto f = files.rbegin(); f != files.rend() && out.size() < n; ++f) {
    auto text = read_from(*f, 0);
    if (!text) {
      if (text.error().code == ErrorCode::kNotFound) continue;  // rotated meanwhile
      return Unexpected(std::move(text).error());
    }
    auto lines = parse_log_records(*text);
    size_t take = std::min(n - out.size(), lines.size());
    out.insert(out.begin(), std::make_move_iterator(lines.end() - static_cast<ptrdiff_t>(take)),
               std::make_move_iterator(lines.end()));
  }
  return out;
}

LogCursor LogCursor::at_start(std::string log_dir) { return LogCursor(std::move(log_dir)); }

Result<LogCursor> LogCursor::at_end(std::string log_dir) {
  LogCursor c(std::move(log_dir));
  auto files = log_files(c.dir_);
  if (files.empty()) return c;
  auto text = MILL_TRY(read_from(files.back(), 0));
  c.inode_ = files.back().inode;
  c.offset_ = complete_length(text);
  return c;
}

Result<std::vector<LogLine>> LogCursor::next() {
  std::vector<LogLine> out;
  // A rotation between listing and reading shows as a file that is not what was
  // listed; list again and go on from where the cursor got to.
  for (int attempt = 0; attempt < 8; ++attempt) {
    auto files = log_files(dir_);
    // Our file is found by inode; the ones after it are newer. When it is gone
    // (rotated out) or we are before everything, every file that exists is newer.
    size_t first = 0;
    uint64_t offset = 0;
    for (size_t i = 0; i < files.size(); ++i) {
      if (inode_ != 0 && files[i].inode == inode_) {
        first = i;
        offset = offset_;
        break;
      }
    }
    bool raced = false;
    for (size_t i = first; i < files.size() && !raced; ++i) {
      uint64_t from = i == first ? offset : 0;
      auto text = read_from(files[i], from);
      if (!text) {
        if (text.error().code != ErrorCode::kNotFound) return Unexpected(std::move(text).error());
        raced = true;
        break;
      }
      size_t len = complete_length(*text);
      auto lines = parse_log_records(std::string_view(*text).substr(0, len));
      out.insert(out.end(), std::make_move_iterator(lines.begin()),
                 std::make_move_iterator(lines.end()));
      inode_ = files[i].inode;
      offset_ = from + len;
    }
    if (!raced) break;
  }
  return out;
}

}  // namespace mill::runtime
