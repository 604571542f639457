"""Let freed arrays' memory stay in the process, so the next step's arrays do not page-fault.

A training step allocates and frees the same large arrays every time: activations, their
gradients, kernel outputs. NumPy gets them from the C library's malloc, and glibc's malloc hands
a request above its mmap threshold (128 KiB at first, raised by itself up to 32 MiB) to the
kernel as a fresh mapping, which `free` unmaps again. The next step's array of the same size is
then new memory: the first write to each 4 KiB page traps into the kernel (a minor page fault),
which zeroes the page before our code may fill it. Heap memory freed at the top of the heap is
likewise given back once more than the trim threshold is free.

Measured on the shakespeare-char-cpu step (2 cores, alternating runs): about 6,000 minor page
faults per step and 34-37 ms per step with glibc's defaults; with both thresholds raised, almost
no faults and 26-29 ms. On shakespeare-char (arrays up to 100 MB), 6.7 s -> 6.0 s per step, with
peak memory 4.1 -> 4.2 GB. Trimming is off altogether (-1, as `man mallopt` documents): with a
1 GiB trim threshold, a shakespeare-char step that followed an evaluation's no-grad forward (as
training's first step does) found over 1 GiB free at its heap's top, gave it back, and faulted
28,000 times a step, 20-25% slower (alternating runs). The price: memory freed after a peak is
kept for reuse rather than returned to the system while the process runs.

A thread other than the main one gets an arena of its own, a chain of heaps of at most 64 MiB,
and an arena's heap left empty is unmapped whatever the thresholds say. So every thread
allocates from the main arena here (at most one arena). Measured with tinyllm's split batch
(tinyllm/split_batch.py), whose second half runs on a worker thread: a shakespeare-char step
faulted 20,000-38,000 times and took 5.80-6.25 s, against 2-564 faults and 5.50-5.52 s with one
arena (ad hoc, 3 steps each).

`mallopt` is glibc's; on other C libraries (macOS, musl) this does nothing. It changes malloc
for the whole process, so importing autograd leaves it alone: `autograd.kernels.tune_process()`
calls it.
"""
import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

# mallopt takes a C int, so 1 GiB (2^30) is the largest power of two it can be
MMAP_THRESHOLD = 1 << 30  # requests below 1 GiB come from the heap, and go back to it
TRIM_THRESHOLD = -1  # never give the heap's free top back to the system
ARENA_MAX = 1  # every thread allocates from the main arena, whose heap is never trimmed


def keep_freed_memory():
    """Raise glibc's mmap and trim thresholds, one arena for all threads; True if this C
    library took the settings."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # no C library by that name, or no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                and mallopt(M_ARENA_MAX, ARENA_MAX))
