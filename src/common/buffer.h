#pragma once

// A chained-slice byte buffer.
//
// Data lives in a queue of heap slices; moving data between buffers moves whole
// slices (no byte copies), which is how bytes travel from one connection to the
// other in a proxy. Reads fill the tail slice and one to kMaxReadSlices fresh
// slices with one readv; writes hand up to kMaxIovecs slices to writev. An
// empty buffer owns no memory (the slice queue keeps its first two entries
// inline), so idle connections cost nothing here.
//
// Slices of the standard size come from a small per-thread free list (bounded
// at kPoolSlices), so the hot path of a proxy, which takes a slice for every
// read and gives it back when the bytes are written, does not go through
// malloc for 16 KiB blocks.
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
  // Free standard slices each thread keeps for reuse (at most 1 MiB).
  static constexpr size_t kPoolSlices = 64;

  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept { move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      clearSlices();
      length_ = 0;
      move(other);
    }
    return *this;
  }

  size_t length() const { return length_; }
  bool empty() const { return length_ == 0; }

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
  void drain(size_t n);
  std::string toString() const;
  // Copies up to size bytes from the front without draining; returns bytes copied.
  size_t copyOut(void* out, size_t size) const;

  // Fills iov with up to max slices of readable data; returns the count.
  int readableIovecs(struct iovec* iov, int max) const;

  // read(2)s up to max_bytes from fd into the buffer: the tail's free room and
  // up to fresh_slices (1..kMaxReadSlices) new slices, in one readv. Returns
  // bytes read, 0 on EOF, -1 with errno set on error (EAGAIN included). *asked
  // (if given) is what the call offered the kernel: a result below it means
  // the socket had no more to give (edge-triggered callers need not read again).
  // Callers offer more slices once a read came back full (a bulk transfer):
  // fewer, larger reads; small messages keep taking a single slice.
  ssize_t readFrom(int fd, size_t max_bytes, size_t* asked = nullptr, int fresh_slices = 1);
  // writev(2)s as much as the kernel takes and drains it. Same return contract;
  // *asked as for readFrom (a shorter write means the socket buffer is full).
  ssize_t writeTo(int fd, size_t* asked = nullptr);

  size_t sliceCount() const { return slices_.size() - head_; }
  // Free slices this thread keeps for reuse (tests).
  static size_t pooledSlices();

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

  // The queue: live slices are slices_[head_, size); popping from the front
  // advances head_ (compacted on growth, reset when empty).
  Slice& front() { return slices_[head_]; }
  Slice& back() { return slices_.back(); }
  bool noSlices() const { return head_ == slices_.size(); }
  void pushBack(Slice&& s);
  void popFront();
  void clearSlices() {
    slices_.clear();
    head_ = 0;
  }

  absl::InlinedVector<Slice, 2> slices_;
  uint32_t head_ = 0;
  size_t length_ = 0;
};

} // namespace legate
