#include "common/memory_stats.h"

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>

// tcmalloc's C entry point, declared weak so that a binary built without it (the
// sanitizer build, which keeps glibc's allocator for ASan) still links; then the
// address is null and glibc's figures are used.
extern "C" int MallocExtension_GetNumericProperty(const char* property, size_t* value)
    __attribute__((weak));
extern "C" void MallocExtension_ReleaseFreeMemory() __attribute__((weak));
extern "C" void MallocExtension_MarkThreadIdle() __attribute__((weak));

namespace legate::memory {
namespace {

// /proc/self/statm stays open for the life of the process: the server reads it
// every second, and a file descriptor that comes and goes would make the process's
// descriptor count (and RLIMIT_NOFILE headroom) flicker.
uint64_t residentBytes() {
  static const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

uint64_t tcmallocProperty(const char* name) {
  size_t value = 0;
  return MallocExtension_GetNumericProperty(name, &value) ? value : 0;
}

} // namespace

Stats current() {
  Stats s;
  if (MallocExtension_GetNumericProperty != nullptr) {
    s.allocated = tcmallocProperty("generic.current_allocated_bytes");
    s.heap_size = tcmallocProperty("generic.heap_size");
    s.pageheap_free = tcmallocProperty("tcmalloc.pageheap_free_bytes");
    s.pageheap_unmapped = tcmallocProperty("tcmalloc.pageheap_unmapped_bytes");
    s.total_thread_cache = tcmallocProperty("tcmalloc.current_total_thread_cache_bytes");
  } else {
    const struct mallinfo2 mi = mallinfo2();
    s.allocated = mi.uordblks + mi.hblkhd;
    s.heap_size = mi.arena + mi.hblkhd;
    s.pageheap_free = mi.fordblks;
  }
  s.physical = residentBytes();
  return s;
}

void releaseFreeMemory() {
  if (MallocExtension_ReleaseFreeMemory != nullptr) {
    // The calling thread's cache goes back to the central lists first, so that
    // spans it was holding objects of can be returned whole.
    if (MallocExtension_MarkThreadIdle != nullptr) MallocExtension_MarkThreadIdle();
    MallocExtension_ReleaseFreeMemory();
  } else {
    ::malloc_trim(0);
  }
}

} // namespace legate::memory
