#include "common/buffer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace legate {

Buffer::Slice Buffer::newSlice(size_t min_capacity) {
  Slice s;
  s.capacity = std::max(min_capacity, kSliceSize);
  s.data.reset(new uint8_t[s.capacity]);
  return s;
}

void Buffer::add(const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    if (slices_.empty() || slices_.back().writable() == 0) {
      slices_.push_back(newSlice(size));
    }
    Slice& tail = slices_.back();
    const size_t n = std::min(size, tail.writable());
    std::memcpy(tail.data.get() + tail.end, p, n);
    tail.end += n;
    length_ += n;
    p += n;
    size -= n;
  }
}

void Buffer::move(Buffer& other) {
  if (&other == this) {
    return;
  }
  if (slices_.empty()) {
    slices_.swap(other.slices_);
  } else {
    for (auto& s : other.slices_) {
      slices_.push_back(std::move(s));
    }
    other.slices_.clear();
  }
  length_ += other.length_;
  other.length_ = 0;
}

void Buffer::move(Buffer& other, size_t n) {
  if (n >= other.length_) {
    move(other);
    return;
  }
  while (n > 0 && !other.slices_.empty()) {
    Slice& front = other.slices_.front();
    const size_t readable = front.readable();
    if (readable <= n) {
      n -= readable;
      other.length_ -= readable;
      length_ += readable;
      slices_.push_back(std::move(front));
      other.slices_.pop_front();
    } else {
      add(front.data.get() + front.start, n);
      front.start += n;
      other.length_ -= n;
      n = 0;
    }
  }
}

void Buffer::drain(size_t n) {
  n = std::min(n, length_);
  length_ -= n;
  while (n > 0) {
    Slice& front = slices_.front();
    const size_t readable = front.readable();
    if (readable <= n) {
      n -= readable;
      slices_.pop_front();
    } else {
      front.start += n;
      n = 0;
    }
  }
  // Keep at most one empty slice around, and only if it is the tail being filled.
  while (!slices_.empty() && slices_.front().readable() == 0 && slices_.size() > 1) {
    slices_.pop_front();
  }
  if (length_ == 0) {
    slices_.clear();
  }
}

std::string Buffer::toString() const {
  std::string out;
  out.reserve(length_);
  for (const auto& s : slices_) {
    out.append(reinterpret_cast<const char*>(s.data.get() + s.start), s.readable());
  }
  return out;
}

size_t Buffer::copyOut(void* out, size_t size) const {
  auto* p = static_cast<uint8_t*>(out);
  size_t copied = 0;
  for (const auto& s : slices_) {
    if (copied == size) {
      break;
    }
    const size_t n = std::min(size - copied, s.readable());
    std::memcpy(p + copied, s.data.get() + s.start, n);
    copied += n;
  }
  return copied;
}

int Buffer::readableIovecs(struct iovec* iov, int max) const {
  int n = 0;
  for (const auto& s : slices_) {
    if (n == max) {
      break;
    }
    if (s.readable() == 0) {
      continue;
    }
    iov[n].iov_base = s.data.get() + s.start;
    iov[n].iov_len = s.readable();
    ++n;
  }
  return n;
}

ssize_t Buffer::readFrom(int fd, size_t max_bytes) {
  // Read into the tail's free space and one fresh slice: a single readv fills
  // both, and the fresh slice is dropped again if nothing landed in it.
  struct iovec iov[2];
  int cnt = 0;
  size_t budget = max_bytes;
  const bool tail_has_room = !slices_.empty() && slices_.back().writable() > 0;
  if (tail_has_room) {
    Slice& tail = slices_.back();
    iov[cnt].iov_base = tail.data.get() + tail.end;
    iov[cnt].iov_len = std::min(tail.writable(), budget);
    budget -= iov[cnt].iov_len;
    ++cnt;
  }
  Slice fresh;
  if (budget > 0) {
    fresh = newSlice(kSliceSize);
    iov[cnt].iov_base = fresh.data.get();
    iov[cnt].iov_len = std::min(fresh.capacity, budget);
    ++cnt;
  }
  const ssize_t rc = ::readv(fd, iov, cnt);
  if (rc <= 0) {
    return rc;
  }
  size_t left = static_cast<size_t>(rc);
  length_ += left;
  if (tail_has_room) {
    const size_t n = std::min(left, iov[0].iov_len);
    slices_.back().end += n;
    left -= n;
  }
  if (left > 0) {
    fresh.end = left;
    slices_.push_back(std::move(fresh));
  }
  return rc;
}

ssize_t Buffer::writeTo(int fd) {
  struct iovec iov[kMaxIovecs];
  const int cnt = readableIovecs(iov, kMaxIovecs);
  if (cnt == 0) {
    return 0;
  }
  const ssize_t rc = ::writev(fd, iov, cnt);
  if (rc > 0) {
    drain(static_cast<size_t>(rc));
  }
  return rc;
}

} // namespace legate
