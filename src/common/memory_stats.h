#pragma once

#include <cstdint>

namespace legate::memory {

// What the process allocator reports, in bytes. With tcmalloc linked (the release
// build) these are its own figures; otherwise glibc's mallinfo2(). Cheap enough for
// the stats flush and /memory, not for the data path.
struct Stats {
  uint64_t allocated = 0;          // bytes handed out to the program and not freed
  uint64_t heap_size = 0;          // bytes the allocator has reserved from the system
  uint64_t pageheap_free = 0;      // free bytes still mapped in the page heap
  uint64_t pageheap_unmapped = 0;  // free bytes returned to the system
  uint64_t total_thread_cache = 0; // bytes held in per-thread caches
  uint64_t physical = 0;           // resident set size (/proc/self/statm)
};

Stats current();

// Hands the allocator's free pages back to the system. For after a one-off peak
// (loading a large configuration), not for the data path: it walks the free lists.
void releaseFreeMemory();

} // namespace legate::memory
