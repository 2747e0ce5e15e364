#pragma once

// A chained-slice byte buffer.
//
// Data lives in a queue of heap slices; moving data between buffers moves whole
// slices (no byte copies), which is how bytes travel from one connection to the
// other in a proxy. A moved slice of at most kCopyBytes is copied into the
// room at the destination's tail instead, so a small body lands behind its
// head and the two leave in one write. Reads fill the tail slice and one to
// kMaxReadSlices fresh slices with one read; writes hand up to kMaxIovecs slices
// to one write. One piece of memory goes by recv/send, more by readv/writev (a
// socket's recv/send skip the file layer's per-call work: about 4 % of a small
// exchange's kernel time here).
//
// A buffer is one pointer: its slice queue (room for two slices inline, the
// length) exists only while it holds slices. An idle connection's two buffers
// are 16 bytes; moving a whole buffer into an empty one hands the queue over.
// Queues and slices of the standard size come from small per-thread free lists
// (bounded at kPoolQueues and kPoolSlices), so the hot path of a proxy, which
// takes a slice for every read and gives it back when the bytes are written,
// does not go through malloc for either.
//
// Thread: not thread-safe; owned by one connection on one worker.

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/inlined_vector.h"

namespace legate {

class Buffer {
public:
  static constexpr size_t kSliceSize = 16 * 1024;
  static constexpr int kMaxIovecs = 64;
  static constexpr int kMaxReadSlices = 4; // 64 KiB per read at most
  // A moved slice this small is copied into the destination's tail room.
  static constexpr size_t kCopyBytes = 512;
  // Free standard slices each thread keeps for reuse (at most 1 MiB).
  static constexpr size_t kPoolSlices = 64;
  // Free slice queues each thread keeps for reuse.
  static constexpr size_t kPoolQueues = 256;

  Buffer() = default;
  ~Buffer() {
    if (q_ != nullptr) releaseQueue();
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept : q_(other.q_) { other.q_ = nullptr; }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      if (q_ != nullptr) releaseQueue();
      q_ = other.q_;
      other.q_ = nullptr;
    }
    return *this;
  }

  size_t length() const { return q_ != nullptr ? q_->length : 0; }
  bool empty() const { return length() == 0; }

  void add(const void* data, size_t size);
  void add(std::string_view data) { add(data.data(), data.size()); }
  // Appends a copy of other's bytes (other is unchanged): for the few places
  // that must keep a body while also sending it (retries, mirrors).
  void addCopy(const Buffer& other);
  // Moves every byte of other to the end of this buffer; other becomes empty.
  void move(Buffer& other);
  // Moves up to n bytes; whole slices move, at most one slice is split by copy.
  void move(Buffer& other, size_t n);
  // Writing in place: reserve(n) returns room for at least n bytes at the end
  // (a fresh slice if the last has less), commit(k <= n) appends the k bytes
  // written there. Nothing else may touch the buffer in between.
  char* reserve(size_t n);
  void commit(size_t n);
  void drain(size_t n) {
    if (q_ != nullptr) {
      Slice& f = q_->slices[q_->head];
      if (n < f.readable()) { // within the first slice: the common case (a parsed line)
        f.start += static_cast<uint32_t>(n);
        q_->length -= n;
        return;
      }
    }
    drainSlices(n);
  }
  std::string toString() const;
  // Copies up to size bytes from the front without draining; returns bytes copied.
  size_t copyOut(void* out, size_t size) const;

  // The first readable bytes: a view into the first slice that has any (valid
  // until the buffer changes); empty only when the buffer is.
  std::string_view frontView() const {
    if (q_ == nullptr) return {};
    const Slice& s = q_->slices[q_->head];
    if (s.readable() > 0) {
      return {reinterpret_cast<const char*>(s.data + s.start), s.readable()};
    }
    return frontViewPastEmpty();
  }

  // Fills iov with up to max slices of readable data; returns the count.
  int readableIovecs(struct iovec* iov, int max) const;

  // Reads up to max_bytes from the socket fd into the buffer: the tail's free
  // room and up to fresh_slices (1..kMaxReadSlices) new slices, in one call. Returns
  // bytes read, 0 on EOF, -1 with errno set on error (EAGAIN included). *asked
  // (if given) is what the call offered the kernel: a result below it means
  // the socket had no more to give (edge-triggered callers need not read again).
  // Callers offer more slices once a read came back full (a bulk transfer):
  // fewer, larger reads; small messages keep taking a single slice.
  ssize_t readFrom(int fd, size_t max_bytes, size_t* asked = nullptr, int fresh_slices = 1);
  // Writes as much as the socket takes and drains it (no SIGPIPE). Same return contract;
  // *asked as for readFrom (a shorter write means the socket buffer is full).
  ssize_t writeTo(int fd, size_t* asked = nullptr);

  size_t sliceCount() const { return q_ != nullptr ? q_->slices.size() - q_->head : 0; }
  // Free slices and queues this thread keeps for reuse (tests).
  static size_t pooledSlices();
  static size_t pooledQueues();

private:
  // Owns its block (returned to the thread's pool or freed on destruction).
  class Slice {
  public:
    Slice() = default;
    explicit Slice(size_t min_capacity);
    Slice(Slice&& o) noexcept
        : data(o.data), capacity(o.capacity), start(o.start), end(o.end) {
      o.data = nullptr;
      o.capacity = o.start = o.end = 0;
    }
    Slice& operator=(Slice&& o) noexcept;
    Slice(const Slice&) = delete;
    Slice& operator=(const Slice&) = delete;
    ~Slice() {
      if (data != nullptr) release(); // moved-from and unused slices cost a compare
    }
    void release();

    size_t readable() const { return end - start; }
    size_t writable() const { return capacity - end; }

    uint8_t* data = nullptr;
    uint32_t capacity = 0;
    uint32_t start = 0; // first readable byte
    uint32_t end = 0;   // one past the last readable byte
  };

  // The queue: live slices are slices[head, size); popping from the front
  // advances head (compacted on growth). A buffer has one only while it holds
  // slices: the queue goes back to the thread's pool when the last one goes.
  struct Queue {
    absl::InlinedVector<Slice, 2> slices;
    uint32_t head = 0;
    size_t length = 0;
  };
  // The queue, made (or taken from the pool) if there is none.
  Queue& queue() { return q_ != nullptr ? *q_ : acquireQueue(); }
  Queue& acquireQueue();
  struct QueuePool;
  void drainSlices(size_t n);
  std::string_view frontViewPastEmpty() const;
  void releaseQueue();
  Slice& front() { return q_->slices[q_->head]; }
  Slice& back() { return q_->slices.back(); }
  bool noSlices() const { return q_ == nullptr || q_->head == q_->slices.size(); }
  void pushBack(Slice&& s);
  // pushBack, or for a small slice a copy into the tail's room.
  void adopt(Slice&& s);
  void popFront();

  Queue* q_ = nullptr;
};

} // namespace legate
