#include "common/buffer.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define LEGATE_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define LEGATE_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define LEGATE_POISON(p, n) ((void)(p), (void)(n))
#define LEGATE_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace legate {
namespace {

// Largest single slice add() makes; bigger adds chain several.
constexpr size_t kMaxSliceCapacity = size_t{1} << 30;

// A bounded per-thread free list of same-size blocks (::operator new(kBytes)).
// Pooled blocks are poisoned under ASan, so a use after release is still
// caught. Once the thread's list is destroyed (thread exit), blocks are
// allocated and freed directly.
template <size_t kBytes, size_t kMax> class ThreadBlockPool {
public:
  static void* take() {
    if (!gone()) {
      List& l = list();
      if (l.count > 0) {
        void* b = l.blocks[--l.count];
        LEGATE_UNPOISON(b, kBytes);
        return b;
      }
    }
    return ::operator new(kBytes);
  }
  static void give(void* b) {
    if (!gone()) {
      List& l = list();
      if (l.count < kMax) {
        LEGATE_POISON(b, kBytes);
        l.blocks[l.count++] = b;
        return;
      }
    }
    ::operator delete(b);
  }
  static size_t size() { return gone() ? 0 : list().count; }

private:
  struct List {
    void* blocks[kMax];
    size_t count = 0;
    ~List() {
      for (size_t i = 0; i < count; ++i) {
        LEGATE_UNPOISON(blocks[i], kBytes);
        ::operator delete(blocks[i]);
      }
      count = 0;
      gone() = true;
    }
  };
  // Trivially destructible, so it outlives the list.
  static bool& gone() {
    static thread_local bool g = false;
    return g;
  }
  static List& list() {
    static thread_local List l;
    return l;
  }
};

using SlicePool = ThreadBlockPool<Buffer::kSliceSize, Buffer::kPoolSlices>;

uint8_t* takeBlock(size_t capacity) {
  if (capacity == Buffer::kSliceSize) return static_cast<uint8_t*>(SlicePool::take());
  return static_cast<uint8_t*>(::operator new(capacity));
}

void giveBlock(uint8_t* block, size_t capacity) {
  if (capacity == Buffer::kSliceSize) {
    SlicePool::give(block);
  } else {
    ::operator delete(block);
  }
}

// The socket calls, made directly. recv(), send(), readv() and writev() are
// thread-cancellation points: in a process with more than one thread, glibc
// switches asynchronous cancellation on before each and off after it, two
// calls that cost about 60 instructions per socket call (four socket calls a
// proxied request). legate never cancels a thread. syscall() sets errno as
// the wrappers do. Writes pass MSG_NOSIGNAL or rely on SIGPIPE being ignored,
// as before.
ssize_t sysRecv(int fd, void* data, size_t len) {
  return ::syscall(SYS_recvfrom, fd, data, len, 0, nullptr, nullptr);
}
ssize_t sysSend(int fd, const void* data, size_t len) {
  return ::syscall(SYS_sendto, fd, data, len, MSG_NOSIGNAL, nullptr, 0);
}
ssize_t sysReadv(int fd, const struct iovec* iov, int cnt) {
  return ::syscall(SYS_readv, fd, iov, cnt);
}
ssize_t sysWritev(int fd, const struct iovec* iov, int cnt) {
  return ::syscall(SYS_writev, fd, iov, cnt);
}

} // namespace

// The free queues: raw storage of a Queue's size (Queue is Buffer's own).
struct Buffer::QueuePool : ThreadBlockPool<sizeof(Buffer::Queue), Buffer::kPoolQueues> {};

size_t Buffer::pooledSlices() { return SlicePool::size(); }
size_t Buffer::pooledQueues() { return QueuePool::size(); }

Buffer::Queue& Buffer::acquireQueue() {
  q_ = new (QueuePool::take()) Queue();
  return *q_;
}

void Buffer::releaseQueue() {
  q_->~Queue(); // releases the slices left
  QueuePool::give(q_);
  q_ = nullptr;
}

Buffer::Slice::Slice(size_t min_capacity) {
  const size_t cap = std::clamp(min_capacity, kSliceSize, kMaxSliceCapacity);
  data = takeBlock(cap);
  capacity = static_cast<uint32_t>(cap);
}

Buffer::Slice& Buffer::Slice::operator=(Slice&& o) noexcept {
  if (this != &o) {
    release();
    data = o.data;
    capacity = o.capacity;
    start = o.start;
    end = o.end;
    o.data = nullptr;
    o.capacity = o.start = o.end = 0;
  }
  return *this;
}

void Buffer::Slice::release() {
  if (data != nullptr) {
    giveBlock(data, capacity);
    data = nullptr;
  }
  capacity = start = end = 0;
}

void Buffer::pushBack(Slice&& s) {
  Queue& q = queue();
  if (q.head > 0 && q.slices.size() == q.slices.capacity()) {
    // Reuse the room popped slices left at the front before growing.
    q.slices.erase(q.slices.begin(), q.slices.begin() + q.head);
    q.head = 0;
  }
  q.slices.push_back(std::move(s));
}

void Buffer::adopt(Slice&& s) {
  const size_t n = s.readable();
  if (n <= kCopyBytes && !noSlices()) {
    Slice& tail = back();
    if (tail.writable() >= n) {
      std::memcpy(tail.data + tail.end, s.data + s.start, n);
      tail.end += static_cast<uint32_t>(n);
      return; // s goes back to the pool with its owner
    }
  }
  pushBack(std::move(s));
}

void Buffer::popFront() {
  q_->slices[q_->head].release();
  if (++q_->head == q_->slices.size()) {
    releaseQueue();
  }
}

void Buffer::add(const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    if (noSlices() || back().writable() == 0) {
      pushBack(Slice(size));
    }
    Slice& tail = back();
    const size_t n = std::min(size, tail.writable());
    std::memcpy(tail.data + tail.end, p, n);
    tail.end += static_cast<uint32_t>(n);
    q_->length += n;
    p += n;
    size -= n;
  }
}

char* Buffer::reserve(size_t n) {
  if (noSlices() || back().writable() < n) {
    pushBack(Slice(n));
  }
  Slice& tail = back();
  return reinterpret_cast<char*>(tail.data + tail.end);
}

void Buffer::commit(size_t n) {
  if (n == 0) return;
  back().end += static_cast<uint32_t>(n);
  q_->length += n;
}

void Buffer::addCopy(const Buffer& other) {
  if (&other == this || other.q_ == nullptr) {
    return;
  }
  const Queue& from = *other.q_;
  for (size_t i = from.head; i < from.slices.size(); ++i) {
    const Slice& s = from.slices[i];
    add(s.data + s.start, s.readable());
  }
}

void Buffer::move(Buffer& other) {
  if (&other == this || other.q_ == nullptr) {
    return;
  }
  if (q_ == nullptr) {
    // The whole queue changes hands.
    q_ = other.q_;
    other.q_ = nullptr;
    return;
  }
  Queue& from = *other.q_;
  for (size_t i = from.head; i < from.slices.size(); ++i) {
    adopt(std::move(from.slices[i]));
  }
  q_->length += from.length;
  other.releaseQueue();
}

void Buffer::move(Buffer& other, size_t n) {
  if (&other == this) {
    return;
  }
  if (n >= other.length()) {
    move(other);
    return;
  }
  while (n > 0) {
    Slice& front = other.front();
    const size_t readable = front.readable();
    if (readable <= n) {
      n -= readable;
      other.q_->length -= readable;
      adopt(std::move(front));
      q_->length += readable;
      other.popFront(); // never the last: other keeps more than n bytes
    } else {
      add(front.data + front.start, n);
      front.start += static_cast<uint32_t>(n);
      other.q_->length -= n;
      n = 0;
    }
  }
}

void Buffer::drainSlices(size_t n) {
  if (q_ == nullptr) {
    return;
  }
  if (n >= q_->length) {
    releaseQueue();
    return;
  }
  q_->length -= n;
  while (n > 0) {
    Slice& f = front();
    const size_t readable = f.readable();
    if (readable <= n) {
      n -= readable;
      popFront();
    } else {
      f.start += static_cast<uint32_t>(n);
      n = 0;
    }
  }
  // Empty slices at the front (a drained slice that was being filled) go.
  while (front().readable() == 0 && sliceCount() > 1) {
    popFront();
  }
}

std::string Buffer::toString() const {
  std::string out;
  if (q_ == nullptr) {
    return out;
  }
  out.reserve(q_->length);
  for (size_t i = q_->head; i < q_->slices.size(); ++i) {
    const Slice& s = q_->slices[i];
    out.append(reinterpret_cast<const char*>(s.data + s.start), s.readable());
  }
  return out;
}

size_t Buffer::copyOut(void* out, size_t size) const {
  auto* p = static_cast<uint8_t*>(out);
  size_t copied = 0;
  if (q_ == nullptr) {
    return 0;
  }
  for (size_t i = q_->head; i < q_->slices.size() && copied < size; ++i) {
    const Slice& s = q_->slices[i];
    const size_t n = std::min(size - copied, s.readable());
    std::memcpy(p + copied, s.data + s.start, n);
    copied += n;
  }
  return copied;
}

std::string_view Buffer::frontViewPastEmpty() const {
  for (size_t i = q_->head; i < q_->slices.size(); ++i) {
    const Slice& s = q_->slices[i];
    if (s.readable() > 0) {
      return {reinterpret_cast<const char*>(s.data + s.start), s.readable()};
    }
  }
  return {};
}

int Buffer::readableIovecs(struct iovec* iov, int max) const {
  int n = 0;
  if (q_ == nullptr) {
    return 0;
  }
  for (size_t i = q_->head; i < q_->slices.size() && n < max; ++i) {
    const Slice& s = q_->slices[i];
    if (s.readable() == 0) {
      continue;
    }
    iov[n].iov_base = s.data + s.start;
    iov[n].iov_len = s.readable();
    ++n;
  }
  return n;
}

ssize_t Buffer::readFrom(int fd, size_t max_bytes, size_t* asked, int fresh_slices) {
  // Read into the tail's free space and fresh slices: a single readv fills
  // them all, and fresh slices nothing landed in go back to the pool.
  fresh_slices = std::clamp(fresh_slices, 1, kMaxReadSlices);
  struct iovec iov[1 + kMaxReadSlices];
  Slice fresh[kMaxReadSlices];
  int cnt = 0;
  size_t budget = max_bytes;
  const bool tail_has_room = !noSlices() && back().writable() > 0;
  if (tail_has_room) {
    Slice& tail = back();
    iov[cnt].iov_base = tail.data + tail.end;
    iov[cnt].iov_len = std::min(tail.writable(), budget);
    budget -= iov[cnt].iov_len;
    ++cnt;
  }
  int fresh_count = 0;
  while (budget > 0 && fresh_count < fresh_slices) {
    Slice& f = fresh[fresh_count++];
    f = Slice(kSliceSize);
    iov[cnt].iov_base = f.data;
    iov[cnt].iov_len = std::min<size_t>(f.capacity, budget);
    budget -= iov[cnt].iov_len;
    ++cnt;
  }
  if (asked != nullptr) {
    *asked = 0;
    for (int i = 0; i < cnt; ++i) *asked += iov[i].iov_len;
  }
  const ssize_t rc = cnt == 1 ? sysRecv(fd, iov[0].iov_base, iov[0].iov_len) : sysReadv(fd, iov, cnt);
  if (rc <= 0) {
    return rc;
  }
  size_t left = static_cast<size_t>(rc);
  int i = 0;
  if (tail_has_room) {
    const size_t n = std::min(left, iov[0].iov_len);
    back().end += static_cast<uint32_t>(n);
    q_->length += n;
    left -= n;
    ++i;
  }
  for (int k = 0; k < fresh_count && left > 0; ++k, ++i) {
    const size_t n = std::min(left, iov[i].iov_len);
    fresh[k].end = static_cast<uint32_t>(n);
    left -= n;
    pushBack(std::move(fresh[k]));
    q_->length += n;
  }
  return rc;
}

ssize_t Buffer::writeTo(int fd, size_t* asked) {
  struct iovec iov[kMaxIovecs];
  const int cnt = readableIovecs(iov, kMaxIovecs);
  if (asked != nullptr) {
    *asked = 0;
    for (int i = 0; i < cnt; ++i) *asked += iov[i].iov_len;
  }
  if (cnt == 0) {
    return 0;
  }
  const ssize_t rc = cnt == 1 ? sysSend(fd, iov[0].iov_base, iov[0].iov_len)
                              : sysWritev(fd, iov, cnt);
  if (rc > 0) {
    drain(static_cast<size_t>(rc));
  }
  return rc;
}

} // namespace legate
