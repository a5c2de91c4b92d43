//! stockstream's own SmartModule entry points, in place of the glue `#[smartmodule]` generates.
//!
//! A SmartModule is a WASM module that exports what `fluvio-smartengine` (in an SPU or
//! in-process) looks for: one transform (`filter`, `map`, `filter_map` or `array_map`),
//! optionally `init` and `look_back`, and `alloc` and `memory`; it imports `copy_records`. The
//! host writes a batch (an encoded `SmartModuleInput`) into memory it got from `alloc`, calls
//! the transform, and copies the encoded `SmartModuleOutput` the module pointed it to with
//! `copy_records` once the call has returned.
//!
//! Why not the SDK's glue (fluvio-smartmodule-derive 0.50.1): it leaks every output batch
//! (`mem::forget` after `copy_records`, and the engine never calls `dealloc`), so a module
//! dies when its store reaches the memory limit, after about 3.4 million ticks in this
//! project's chains; and it decodes, clones and re-encodes each batch byte by byte under fuel
//! metering, with an allocation per record. Here:
//!
//! - the batch is decoded straight from the input bytes ([`wire::Batch`]); a record's key and
//!   value are slices of it;
//! - the output goes into one buffer that the next call clears and reuses;
//! - a record passed through or mapped is written with its original header bytes, and values are
//!   written into scratch space reused across records, so the common case allocates nothing;
//! - fluvio-protocol's types are still used where they cost nothing per record: decoding the
//!   `init` parameters and encoding errors.
//!
//! A module declares its functions with [`smartmodule!`]:
//!
//! ```ignore
//! stockstream_smartmodule::smartmodule! { init = init, map = enrich, look_back = rebuild }
//! ```

pub mod entry;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod host;
pub mod wire;

pub use entry::{
    mark_with, read_progress, resume_params, resume_seed, Progress, RecordOut, RecordsOut, Result,
    Scratch, Session,
};
pub use fluvio_smartmodule::dataplane::smartmodule::SmartModuleExtraParams;
pub use fluvio_smartmodule::{eyre, Error};
pub use wire::InputRecord as Record;

/// Exports a module's functions as SmartModule entry points (only when built for WASM).
///
/// Name functions in scope: exactly one transform, and optionally `init` and
/// `look_back`:
///
/// | entry | function |
/// |---|---|
/// | `init` | `fn(SmartModuleExtraParams) -> Result<()>` |
/// | `filter` | `fn(&Record) -> Result<bool>` |
/// | `map` | `fn(&Record, &mut RecordOut) -> Result<()>` |
/// | `filter_map` | `fn(&Record, &mut RecordOut) -> Result<bool>` (true emits) |
/// | `array_map` | `fn(&Record, &mut RecordsOut) -> Result<()>` |
/// | `look_back` | `fn(&Record) -> Result<()>` |
#[macro_export]
macro_rules! smartmodule {
    ($($entry:ident = $function:ident),+ $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        mod __stockstream_smartmodule_exports {
            /// Input memory for the host (see `stockstream_smartmodule::host`).
            #[unsafe(no_mangle)]
            pub extern "C" fn alloc(len: usize) -> *mut u8 {
                $crate::host::alloc(len)
            }

            $( $crate::__entry_point!($entry, $function); )+
        }
    };
}

/// One exported entry point; see [`smartmodule!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __entry_point {
    (init, $function:ident) => {
        /// # Safety
        /// Called by the host with memory it got from `alloc`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn init(ptr: *mut u8, len: usize, version: i16) -> i32 {
            unsafe {
                $crate::host::call(ptr, len, |input, output, _, session| {
                    $crate::entry::init(input, version, output, session, super::$function)
                })
            }
        }
    };
    (look_back, $function:ident) => {
        /// # Safety
        /// Called by the host with memory it got from `alloc`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn look_back(ptr: *mut u8, len: usize, version: i16) -> i32 {
            unsafe {
                $crate::host::call(ptr, len, |input, output, _, _| {
                    $crate::entry::look_back(input, version, output, super::$function)
                })
            }
        }
    };
    (filter, $function:ident) => {
        /// # Safety
        /// Called by the host with memory it got from `alloc`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn filter(ptr: *mut u8, len: usize, version: i16) -> i32 {
            unsafe {
                $crate::host::call_transform(ptr, len, |input, output, _, session| {
                    $crate::entry::filter(input, version, output, session, super::$function)
                })
            }
        }
    };
    ($entry:ident, $function:ident) => {
        /// # Safety
        /// Called by the host with memory it got from `alloc`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $entry(ptr: *mut u8, len: usize, version: i16) -> i32 {
            unsafe {
                $crate::host::call_transform(ptr, len, |input, output, scratch, session| {
                    $crate::entry::$entry(
                        input,
                        version,
                        output,
                        session,
                        scratch,
                        super::$function,
                    )
                })
            }
        }
    };
}
