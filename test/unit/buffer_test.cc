#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/buffer.h"
#include "gtest/gtest.h"

namespace legate {
namespace {

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7) % 26);
  return s;
}

TEST(BufferTest, EmptyBufferOwnsNoSlices) {
  Buffer b;
  EXPECT_EQ(b.length(), 0u);
  EXPECT_EQ(b.sliceCount(), 0u);
  b.add("hello");
  b.drain(5);
  EXPECT_EQ(b.sliceCount(), 0u) << "a drained buffer must give its memory back";
}

TEST(BufferTest, AddSpansSlicesAndRoundTrips) {
  Buffer b;
  const std::string data = pattern(3 * Buffer::kSliceSize + 123);
  b.add(data.substr(0, 100));
  b.add(data.substr(100));
  EXPECT_EQ(b.length(), data.size());
  EXPECT_EQ(b.toString(), data);
}

TEST(BufferTest, MoveAllIsZeroCopyOfSlices) {
  Buffer a, b;
  const std::string data = pattern(2 * Buffer::kSliceSize + 5);
  a.add(data);
  const size_t slices = a.sliceCount();
  b.add("x");
  b.move(a);
  EXPECT_EQ(a.length(), 0u);
  EXPECT_EQ(a.sliceCount(), 0u);
  EXPECT_EQ(b.sliceCount(), slices + 1) << "whole slices move, nothing is merged";
  EXPECT_EQ(b.toString(), "x" + data);
}

// A small body moved behind its head joins the head's slice (one write, not
// two); anything bigger, or with no room left at the tail, moves as a slice.
TEST(BufferTest, SmallMovedSlicesAreCopiedIntoTheTailsRoom) {
  Buffer head, body;
  head.add("HTTP/1.1 200 OK\r\n\r\n");
  body.add("hello");
  head.move(body);
  EXPECT_EQ(head.sliceCount(), 1u);
  EXPECT_EQ(body.length(), 0u);
  EXPECT_EQ(head.toString(), "HTTP/1.1 200 OK\r\n\r\nhello");

  Buffer big;
  big.add(pattern(Buffer::kCopyBytes + 1));
  head.move(big);
  EXPECT_EQ(head.sliceCount(), 2u) << "over kCopyBytes: linked, not copied";

  // The partial move's whole-slice case too: two slices, the first small.
  Buffer src, dst;
  src.add("abc");
  Buffer rest;
  rest.add(pattern(Buffer::kSliceSize));
  src.move(rest); // src: "abc" + (16 KiB: linked)
  ASSERT_EQ(src.sliceCount(), 2u);
  dst.add("0");
  dst.move(src, 3);
  EXPECT_EQ(dst.sliceCount(), 1u);
  EXPECT_EQ(dst.toString(), "0abc");
  EXPECT_EQ(src.length(), Buffer::kSliceSize);

  // A full tail takes nothing: the small slice is linked.
  Buffer full, tiny;
  full.add(pattern(Buffer::kSliceSize));
  tiny.add("z");
  ASSERT_EQ(full.sliceCount(), 1u);
  full.move(tiny);
  EXPECT_EQ(full.sliceCount(), 2u);
  EXPECT_EQ(full.toString(), pattern(Buffer::kSliceSize) + "z");
}

TEST(BufferTest, PartialMoveSplitsOneSlice) {
  Buffer a, b;
  const std::string data = pattern(Buffer::kSliceSize + 1000);
  a.add(data);
  b.move(a, 10);
  EXPECT_EQ(b.toString(), data.substr(0, 10));
  EXPECT_EQ(a.toString(), data.substr(10));
  b.move(a, Buffer::kSliceSize);
  EXPECT_EQ(b.toString(), data.substr(0, 10 + Buffer::kSliceSize));
  EXPECT_EQ(a.length(), data.size() - 10 - Buffer::kSliceSize);
}

TEST(BufferTest, DrainAcrossSlices) {
  Buffer b;
  const std::string data = pattern(3 * Buffer::kSliceSize);
  b.add(data);
  b.drain(Buffer::kSliceSize + 7);
  EXPECT_EQ(b.toString(), data.substr(Buffer::kSliceSize + 7));
  b.drain(1u << 30);
  EXPECT_TRUE(b.empty());
}

TEST(BufferTest, CopyOutDoesNotDrain) {
  Buffer b;
  b.add("abcdef");
  char out[4];
  EXPECT_EQ(b.copyOut(out, 4), 4u);
  EXPECT_EQ(std::string(out, 4), "abcd");
  EXPECT_EQ(b.length(), 6u);
}

TEST(BufferTest, ReadFromAndWriteToThroughASocketPair) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  const std::string data = pattern(100000);
  Buffer out;
  out.add(data);
  Buffer in;
  size_t received = 0;
  for (int i = 0; i < 1000 && (received < data.size()); ++i) {
    if (!out.empty()) {
      ssize_t w = out.writeTo(fds[0]);
      ASSERT_TRUE(w > 0 || errno == EAGAIN);
    }
    ssize_t r = in.readFrom(fds[1], 1 << 20);
    if (r > 0) received += static_cast<size_t>(r);
  }
  EXPECT_EQ(in.toString(), data);
  // Budgeted read: never more than asked for.
  Buffer small;
  ASSERT_EQ(::write(fds[0], data.data(), 5000), 5000);
  EXPECT_EQ(small.readFrom(fds[1], 100), 100);
  EXPECT_EQ(small.length(), 100u);
  // EOF reads as 0.
  ::close(fds[0]);
  Buffer rest;
  while (rest.readFrom(fds[1], 1 << 20) > 0) {
  }
  EXPECT_EQ(rest.readFrom(fds[1], 1 << 20), 0);
  ::close(fds[1]);
}


TEST(BufferTest, ReadFromFillsSeveralFreshSlicesInOneCall) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  int size = 1 << 20;
  ASSERT_EQ(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
  ASSERT_EQ(setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
  const std::string data = pattern(3 * Buffer::kSliceSize + 100);
  ASSERT_EQ(::write(fds[0], data.data(), data.size()), static_cast<ssize_t>(data.size()));
  Buffer in;
  in.add("x"); // a tail with room: filled first, then the fresh slices
  size_t asked = 0;
  const ssize_t r = in.readFrom(fds[1], 1 << 20, &asked, Buffer::kMaxReadSlices);
  EXPECT_EQ(r, static_cast<ssize_t>(data.size()));
  EXPECT_GT(asked, data.size()); // offered the tail and four fresh slices
  EXPECT_EQ(in.toString(), "x" + data);
  // Fresh slices nothing landed in are not kept.
  EXPECT_LE(in.sliceCount(), 4u);
  // The budget caps the offer across the slices too.
  ASSERT_EQ(::write(fds[0], data.data(), data.size()), static_cast<ssize_t>(data.size()));
  Buffer capped;
  EXPECT_EQ(capped.readFrom(fds[1], Buffer::kSliceSize + 10, &asked, Buffer::kMaxReadSlices),
            static_cast<ssize_t>(Buffer::kSliceSize + 10));
  EXPECT_EQ(asked, Buffer::kSliceSize + 10);
  EXPECT_EQ(capped.toString(), data.substr(0, Buffer::kSliceSize + 10));
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(BufferTest, ManySlicesQueueThroughPartialDrainsAndAppends) {
  // Enough slices to spill the inline queue, drained from the front while
  // more arrive at the back (the queue compacts instead of growing forever).
  Buffer b;
  std::string expect;
  for (int round = 0; round < 50; ++round) {
    const std::string chunk = pattern(Buffer::kSliceSize + 100 * round + 1);
    b.add(chunk);
    expect += chunk;
    const size_t n = Buffer::kSliceSize / 2 + static_cast<size_t>(round);
    b.drain(n);
    expect.erase(0, n);
    ASSERT_EQ(b.length(), expect.size());
  }
  EXPECT_EQ(b.toString(), expect);
  Buffer c;
  c.move(b, expect.size() / 3);
  EXPECT_EQ(c.toString() + b.toString(), expect);
  b.drain(b.length());
  EXPECT_EQ(b.sliceCount(), 0u);
}

TEST(BufferTest, MoveConstructionLeavesTheSourceEmpty) {
  Buffer a;
  a.add("hello");
  Buffer b(std::move(a));
  EXPECT_EQ(a.length(), 0u);
  EXPECT_EQ(a.sliceCount(), 0u);
  EXPECT_EQ(b.toString(), "hello");
  Buffer c;
  c.add("old");
  c = std::move(b);
  EXPECT_EQ(c.toString(), "hello");
  EXPECT_TRUE(b.empty());
}

TEST(BufferTest, StandardSlicesAreReusedThroughThePerThreadPool) {
  {
    Buffer warm;
    for (int i = 0; i < 4; ++i) warm.add(pattern(Buffer::kSliceSize));
  }
  const size_t pooled = Buffer::pooledSlices();
  EXPECT_GE(pooled, 4u) << "released standard slices are kept for reuse";
  EXPECT_LE(pooled, Buffer::kPoolSlices);
  {
    Buffer b;
    b.add("x");
    EXPECT_EQ(Buffer::pooledSlices(), pooled - 1) << "a new slice comes from the pool";
  }
  EXPECT_EQ(Buffer::pooledSlices(), pooled);
  {
    // More than the pool holds: the excess is freed, the pool stays bounded.
    Buffer big;
    for (size_t i = 0; i < 2 * Buffer::kPoolSlices; ++i) big.add(pattern(Buffer::kSliceSize));
  }
  EXPECT_EQ(Buffer::pooledSlices(), Buffer::kPoolSlices);
}

// An empty buffer is one pointer; its slice queue exists while it holds data,
// comes from the thread's pool and goes back there when the buffer empties.
TEST(BufferTest, TheSliceQueueExistsOnlyWhileTheBufferHoldsData) {
  static_assert(sizeof(Buffer) == sizeof(void*));
  { Buffer warm; warm.add("x"); } // the pool has a queue
  const size_t pooled = Buffer::pooledQueues();
  ASSERT_GE(pooled, 1u);
  Buffer a;
  a.add("hello");
  EXPECT_EQ(Buffer::pooledQueues(), pooled - 1);
  Buffer b;
  b.move(a); // into an empty buffer: the queue changes hands
  EXPECT_EQ(Buffer::pooledQueues(), pooled - 1);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b.toString(), "hello");
  a.add("more");
  b.move(a); // into a non-empty one: slices move, a's queue goes back
  EXPECT_EQ(Buffer::pooledQueues(), pooled - 1);
  EXPECT_EQ(b.toString(), "hellomore");
  b.drain(3);
  EXPECT_EQ(Buffer::pooledQueues(), pooled - 1);
  b.drain(b.length());
  EXPECT_EQ(Buffer::pooledQueues(), pooled);
  // A partial move leaves the source with its queue; a full one takes it.
  a.add(pattern(3 * Buffer::kSliceSize));
  b.move(a, Buffer::kSliceSize + 10);
  EXPECT_EQ(b.toString(), pattern(3 * Buffer::kSliceSize).substr(0, Buffer::kSliceSize + 10));
  EXPECT_EQ(a.length(), 2 * Buffer::kSliceSize - 10);
  b.move(a, a.length());
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b.toString(), pattern(3 * Buffer::kSliceSize));
  b.drain(b.length());
  EXPECT_EQ(Buffer::pooledQueues(), pooled);
}

TEST(BufferTest, FrontViewIsTheFirstSliceWithBytes) {
  Buffer a;
  EXPECT_TRUE(a.frontView().empty());
  const std::string full = pattern(Buffer::kSliceSize);
  a.add(full); // fills one standard slice exactly
  a.add("12345");
  ASSERT_EQ(a.sliceCount(), 2u);
  EXPECT_EQ(a.frontView(), full);
  a.drain(Buffer::kSliceSize - 3);
  EXPECT_EQ(a.frontView(), full.substr(Buffer::kSliceSize - 3));
  a.drain(3);
  EXPECT_EQ(a.frontView(), "12345");
  // A reserved slice nothing was committed to, with bytes moved in behind it.
  Buffer b;
  b.reserve(10);
  b.commit(0);
  EXPECT_TRUE(b.frontView().empty());
  Buffer c;
  c.add("xyz");
  b.move(c);
  EXPECT_EQ(b.frontView(), "xyz");
  EXPECT_EQ(b.toString(), "xyz");
}

TEST(BufferTest, ShortReadAndWriteReportWhatWasAsked) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  ASSERT_EQ(::write(fds[0], "abc", 3), 3);
  Buffer in;
  size_t asked = 0;
  EXPECT_EQ(in.readFrom(fds[1], 1 << 20, &asked), 3);
  EXPECT_GT(asked, 3u) << "a short read tells the caller the socket is empty";
  Buffer out;
  out.add("defg");
  EXPECT_EQ(out.writeTo(fds[0], &asked), 4);
  EXPECT_EQ(asked, 4u);
  ::close(fds[0]);
  ::close(fds[1]);
}

} // namespace
} // namespace legate

namespace legate {
namespace {

TEST(BufferCopyTest, AddCopyLeavesTheSourceIntact) {
  Buffer src;
  std::string big(3 * Buffer::kSliceSize + 17, 'a');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  src.add(big);
  Buffer dst;
  dst.add("x");
  dst.addCopy(src);
  EXPECT_EQ(src.toString(), big);
  EXPECT_EQ(dst.toString(), "x" + big);
  dst.addCopy(dst); // self-copy is a no-op
  EXPECT_EQ(dst.length(), big.size() + 1);
}

TEST(BufferTest, ReserveAndCommitAppendInPlace) {
  Buffer b;
  b.add("head:");
  char* p = b.reserve(10);
  std::memcpy(p, "0123456789", 10);
  b.commit(4); // only part of the reserved room is used
  EXPECT_EQ(b.toString(), "head:0123");
  // A reservation larger than the tail's room starts a fresh slice.
  const std::string big(3 * Buffer::kSliceSize, 'z');
  p = b.reserve(big.size());
  std::memcpy(p, big.data(), big.size());
  b.commit(big.size());
  EXPECT_EQ(b.length(), 9 + big.size());
  EXPECT_EQ(b.toString().substr(0, 9), "head:0123");
  b.commit(0);
  EXPECT_EQ(b.length(), 9 + big.size());
}

// Failures come back as -1 with errno set, through both the one-slice calls
// (recv, send) and the scattered ones (readv), and a write to a closed peer
// fails with EPIPE instead of raising SIGPIPE (not ignored in this test).
TEST(BufferTest, SocketErrorsComeBackAsMinusOneAndErrno) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  Buffer empty_in;
  errno = 0;
  EXPECT_EQ(empty_in.readFrom(fds[1], 100), -1);
  EXPECT_EQ(errno, EAGAIN);
  Buffer scattered_in;
  scattered_in.add("x"); // a tail with room and a fresh slice: readv
  size_t asked = 0;
  errno = 0;
  EXPECT_EQ(scattered_in.readFrom(fds[1], 1 << 20, &asked, Buffer::kMaxReadSlices), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_GT(asked, Buffer::kSliceSize);
  EXPECT_EQ(scattered_in.toString(), "x");
  ::close(fds[1]);
  Buffer out;
  out.add("lost");
  errno = 0;
  EXPECT_EQ(out.writeTo(fds[0]), -1);
  EXPECT_EQ(errno, EPIPE);
  EXPECT_EQ(out.toString(), "lost") << "a failed write drains nothing";
  ::close(fds[0]);
}

} // namespace
} // namespace legate
