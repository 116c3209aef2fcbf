// Clang's thread-safety analysis (-Wthread-safety): which mutex guards which member,
// which functions need it held. The macros expand to nothing on other compilers.
//
// libstdc++'s std::mutex carries no annotations, so guarded code locks a base::Mutex
// (base/mutex.h), which does. The clang builds compile with -Wthread-safety -Werror.
#pragma once

#if defined(__clang__)
#define GPUNET_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define GPUNET_THREAD_ANNOTATION_(x)
#endif

// Abseil's absl/base/internal/thread_annotations.h (pulled in by its containers)
// defines GUARDED_BY, PT_GUARDED_BY and NO_THREAD_SAFETY_ANALYSIS with the same
// meaning: ours replace them where absl came first (a different definition of a
// macro is an error under -Werror), and absl's replace ours, silently as a system
// header, where it comes after.
#undef GUARDED_BY
#undef PT_GUARDED_BY
#undef NO_THREAD_SAFETY_ANALYSIS

/// A type that acts as a lock (base::Mutex).
#define CAPABILITY(x) GPUNET_THREAD_ANNOTATION_(capability(x))
/// A RAII type that holds a capability for its lifetime (base::MutexLock).
#define SCOPED_CAPABILITY GPUNET_THREAD_ANNOTATION_(scoped_lockable)
/// A member read or written only with `x` held.
#define GUARDED_BY(x) GPUNET_THREAD_ANNOTATION_(guarded_by(x))
/// A pointer member whose pointee is read or written only with `x` held.
#define PT_GUARDED_BY(x) GPUNET_THREAD_ANNOTATION_(pt_guarded_by(x))
/// The caller must hold these (exclusively).
#define REQUIRES(...) GPUNET_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
/// The caller must hold these at least shared.
#define REQUIRES_SHARED(...) GPUNET_THREAD_ANNOTATION_(requires_shared_capability(__VA_ARGS__))
/// The caller must NOT hold these (the function takes them).
#define EXCLUDES(...) GPUNET_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
/// The function takes these and returns holding them.
#define ACQUIRE(...) GPUNET_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) GPUNET_THREAD_ANNOTATION_(acquire_shared_capability(__VA_ARGS__))
/// The function releases these.
#define RELEASE(...) GPUNET_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) GPUNET_THREAD_ANNOTATION_(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) GPUNET_THREAD_ANNOTATION_(release_generic_capability(__VA_ARGS__))
/// The function returns the capability (an accessor of a member mutex).
#define RETURN_CAPABILITY(x) GPUNET_THREAD_ANNOTATION_(lock_returned(x))
/// Tells the analysis the capability is held here (checked at run time by the caller).
#define ASSERT_CAPABILITY(x) GPUNET_THREAD_ANNOTATION_(assert_capability(x))
/// Opts a function out of the analysis; each use says why in a comment.
#define NO_THREAD_SAFETY_ANALYSIS GPUNET_THREAD_ANNOTATION_(no_thread_safety_analysis)
