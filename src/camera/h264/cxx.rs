//! The C++ runtime that OpenH264's decoder needs, and nothing more: the
//! static musl builds link no libstdc++ (there is none for musl here), so
//! operator new and delete are supplied here on top of the C allocator.
//! Compiled without exceptions (.cargo/config.toml), the decoder has no
//! other C++ runtime symbol; a link of both static targets proves it.
//! Elsewhere (glibc builds) libstdc++ is linked and supplies them.
#![allow(unsafe_code)] // exported symbols and the C allocator: the module's whole job

#[cfg(target_env = "musl")]
mod runtime {
    use std::ffi::c_void;

    /// `operator new(size_t)`: C++ expects a valid pointer or an exception;
    /// with no exceptions, running out of memory aborts, as `Vec` would.
    #[unsafe(export_name = "_Znwm")]
    extern "C" fn new(size: usize) -> *mut c_void {
        // SAFETY: malloc may be called with any size; 0 is made 1 so that
        // every allocation is a distinct pointer, as C++ requires.
        let p = unsafe { libc::malloc(size.max(1)) };
        if p.is_null() {
            std::process::abort();
        }
        p
    }

    /// `operator new[](size_t)`.
    #[unsafe(export_name = "_Znam")]
    extern "C" fn new_array(size: usize) -> *mut c_void {
        new(size)
    }

    /// `operator delete(void*)`.
    #[unsafe(export_name = "_ZdlPv")]
    extern "C" fn delete(p: *mut c_void) {
        // SAFETY: p is null or came from `new` above, which used malloc.
        unsafe { libc::free(p) }
    }

    /// `operator delete(void*, size_t)` (sized deallocation, C++14).
    #[unsafe(export_name = "_ZdlPvm")]
    extern "C" fn delete_sized(p: *mut c_void, _size: usize) {
        delete(p)
    }

    /// `operator delete[](void*)`.
    #[unsafe(export_name = "_ZdaPv")]
    extern "C" fn delete_array(p: *mut c_void) {
        delete(p)
    }

    /// `operator delete[](void*, size_t)`.
    #[unsafe(export_name = "_ZdaPvm")]
    extern "C" fn delete_array_sized(p: *mut c_void, _size: usize) {
        delete(p)
    }

    /// The functions' addresses, so that the linker keeps this object when
    /// it reaches the decoder's archive, which comes after ours.
    pub fn link() {
        let table: [*const (); 6] = [
            new as *const (),
            new_array as *const (),
            delete as *const (),
            delete_sized as *const (),
            delete_array as *const (),
            delete_array_sized as *const (),
        ];
        std::hint::black_box(table);
    }
}

/// Makes sure the runtime above is in the link (a no-op elsewhere).
pub fn link() {
    #[cfg(target_env = "musl")]
    runtime::link();
}
