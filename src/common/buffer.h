#pragma once

// A chained-slice byte buffer.
//
// Data lives in a deque of heap slices; moving data between buffers moves whole
// slices (no byte copies), which is how bytes travel from one connection to the
// other in a proxy. Reads fill the tail slice and one fresh slice with readv;
// writes hand up to kMaxIovecs slices to writev. An empty buffer owns no memory,
// so idle connections cost nothing here.
//
// Thread: not thread-safe; owned by one connection on one worker.

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

namespace legate {

class Buffer {
public:
  static constexpr size_t kSliceSize = 16 * 1024;
  static constexpr int kMaxIovecs = 64;

  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&&) = default;
  Buffer& operator=(Buffer&&) = default;

  size_t length() const { return length_; }
  bool empty() const { return length_ == 0; }

  void add(const void* data, size_t size);
  void add(std::string_view data) { add(data.data(), data.size()); }
  // Moves every byte of other to the end of this buffer; other becomes empty.
  void move(Buffer& other);
  // Moves up to n bytes; whole slices move, at most one slice is split by copy.
  void move(Buffer& other, size_t n);
  void drain(size_t n);
  std::string toString() const;
  // Copies up to size bytes from the front without draining; returns bytes copied.
  size_t copyOut(void* out, size_t size) const;

  // Fills iov with up to max slices of readable data; returns the count.
  int readableIovecs(struct iovec* iov, int max) const;

  // read(2)s up to max_bytes from fd into the buffer. Returns bytes read, 0 on
  // EOF, -1 with errno set on error (EAGAIN included).
  ssize_t readFrom(int fd, size_t max_bytes);
  // writev(2)s as much as the kernel takes and drains it. Same return contract.
  ssize_t writeTo(int fd);

  size_t sliceCount() const { return slices_.size(); }

private:
  struct Slice {
    std::unique_ptr<uint8_t[]> data;
    size_t capacity = 0;
    size_t start = 0; // first readable byte
    size_t end = 0;   // one past the last readable byte
    size_t readable() const { return end - start; }
    size_t writable() const { return capacity - end; }
  };
  static Slice newSlice(size_t min_capacity);

  std::deque<Slice> slices_;
  size_t length_ = 0;
};

} // namespace legate
