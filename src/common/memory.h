#pragma once

// Handing freed memory back to the system.

namespace mill {

// Returns the allocator's free pages, in every thread's arena, to the system
// (glibc's malloc_trim): memory freed in many small blocks (forgotten records with
// large specs) otherwise stays in the process's resident set. Costs a walk of the heap,
// about a millisecond per hundred megabytes: for after a large release, not a hot path.
void return_free_memory();

}  // namespace mill
