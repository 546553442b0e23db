#include "runtime/shim/log_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

#include "runtime/shim_protocol.h"

namespace mill::runtime::shim {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if there is none.
size_t utf8_sequence(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are invalid.
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Where to cut a line of raw bytes at most `limit` long without splitting a UTF-8
// sequence (falls back to `limit` for bytes that are not UTF-8 anyway).
size_t cut_point(std::string_view s, size_t limit) {
  for (size_t back = 0; back < 4 && back < limit; ++back) {
    unsigned char c = static_cast<unsigned char>(s[limit - back]);
    if ((c & 0xC0) != 0x80) return back == 0 ? limit : limit - back;
  }
  return limit;
}

}  // namespace

void append_json_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else if (c >= 0x80) {
      size_t len = utf8_sequence(s, i);
      if (len == 0) {
        out += "\\ufffd";
        ++i;
        continue;
      }
      out.append(s.substr(i, len));
      i += len;
      continue;
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
}

std::string now_rfc3339() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                static_cast<int>(ts.tv_nsec / 1000000));
  return buf;
}

LogWriter::LogWriter(std::string dir, uint64_t max_bytes, int max_files)
    : dir_(std::move(dir)), max_bytes_(max_bytes), max_files_(max_files) {}

LogWriter::~LogWriter() {
  if (fd_ >= 0) close(fd_);
}

bool LogWriter::open() {
  std::string path = dir_ + "/" + std::string(kLogFile);
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd_ < 0) return false;
  struct stat st {};
  size_ = fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  return true;
}

void LogWriter::feed(Stream stream, const char* data, size_t size) {
  std::string& pending = pending_[static_cast<int>(stream)];
  pending.append(data, size);
  std::string batch;
  size_t start = 0;
  while (start < pending.size()) {
    std::string_view rest(pending.data() + start, pending.size() - start);
    size_t nl = rest.find('\n');
    if (nl != std::string_view::npos && nl <= kMaxLine) {
      emit(stream, rest.substr(0, nl), batch);
      start += nl + 1;
    } else if (rest.size() > kMaxLine) {
      size_t cut = cut_point(rest, kMaxLine);
      emit(stream, rest.substr(0, cut), batch);
      start += cut;
    } else {
      break;
    }
  }
  pending.erase(0, start);
  write_batch(batch);
}

void LogWriter::finish(Stream stream) {
  std::string& pending = pending_[static_cast<int>(stream)];
  if (pending.empty()) return;
  std::string batch;
  emit(stream, pending, batch);
  pending.clear();
  write_batch(batch);
}

void LogWriter::emit(Stream stream, std::string_view line, std::string& batch) {
  std::string record = "{\"ts\":\"" + now_rfc3339() + "\",\"stream\":\"" +
                       (stream == Stream::kStdout ? "stdout" : "stderr") + "\",\"line\":\"";
  append_json_escaped(record, line);
  record += "\"}\n";
  uint64_t used = size_ + batch.size();
  if (used > 0 && used + record.size() > max_bytes_) {
    write_batch(batch);
    rotate();
  }
  batch += record;
}

void LogWriter::write_batch(std::string& batch) {
  size_t off = 0;
  while (fd_ >= 0 && off < batch.size()) {
    ssize_t n = write(fd_, batch.data() + off, batch.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // disk full or gone: the lines are lost, the container goes on
    off += static_cast<size_t>(n);
  }
  size_ += off;
  batch.clear();
}

void LogWriter::rotate() {
  std::string base = dir_ + "/" + std::string(kLogFile);
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (max_files_ <= 0) {
    unlink(base.c_str());
  } else {
    for (int i = max_files_ - 1; i >= 1; --i) {
      rename((base + "." + std::to_string(i)).c_str(),
             (base + "." + std::to_string(i + 1)).c_str());
    }
    rename(base.c_str(), (base + ".1").c_str());
  }
  size_ = 0;
  open();
}

}  // namespace mill::runtime::shim
