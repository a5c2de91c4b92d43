//! What only exists inside the WASM module: the input and output buffers the host reads and
//! writes, `alloc`, and the `copy_records` import.
//!
//! A WASM SmartModule is single-threaded and the host never re-enters it, so the buffers are
//! plain statics. The input buffer is lent to the host by `alloc` and taken back by the next
//! entry point; the output buffer must outlive the call (the host copies it after the call
//! returns), so it is kept and reused by the next call instead of being leaked as the SDK's glue
//! leaks it.

use std::alloc::Layout;
use std::cell::UnsafeCell;

use crate::entry::{LastCall, Scratch, Session};

/// Capacity kept between calls; a larger batch is served and its memory given back afterwards.
const RETAIN_BYTES: usize = 4 << 20;

struct Slot<T>(UnsafeCell<T>);

// SAFETY: a WASM SmartModule runs on one thread and its entry points are never re-entered.
unsafe impl<T> Sync for Slot<T> {}

impl<T> Slot<T> {
    /// SAFETY: the caller holds no other reference into this slot.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self) -> &mut T {
        unsafe { &mut *self.0.get() }
    }
}

struct Input {
    buffer: Vec<u8>,
    /// `alloc` handed `buffer` to the host and no entry point has taken it back yet.
    lent: bool,
}

static INPUT: Slot<Input> = Slot(UnsafeCell::new(Input {
    buffer: Vec::new(),
    lent: false,
}));
static OUTPUT: Slot<Vec<u8>> = Slot(UnsafeCell::new(Vec::new()));
static SCRATCH: Slot<Scratch> = Slot(UnsafeCell::new(Scratch::new()));
static SESSION: Slot<Session> = Slot(UnsafeCell::new(Session {
    progress: false,
    max_output: None,
    skip: Vec::new(),
    skip_from: None,
}));
static LAST_CALL: Slot<Option<LastCall>> = Slot(UnsafeCell::new(None));

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    /// Tells the host where this call's output is; the host copies it once the call returns.
    fn copy_records(ptr: i32, len: i32);
}

/// The `alloc` export: room for `len` bytes of input, which the host writes before calling an
/// entry point.
pub fn alloc(len: usize) -> *mut u8 {
    // SAFETY: single-threaded, and no entry point is running while the host allocates.
    let input = unsafe { INPUT.get() };
    if input.lent {
        // A second allocation before any call: never done by fluvio-smartengine, but served
        // from the heap, and freed by the entry point that receives it.
        return heap_alloc(len);
    }
    input.buffer.clear();
    if input.buffer.capacity() > RETAIN_BYTES && len <= RETAIN_BYTES {
        input.buffer.shrink_to(RETAIN_BYTES);
    }
    input.buffer.reserve(len);
    input.lent = true;
    input.buffer.as_mut_ptr()
}

fn heap_alloc(len: usize) -> *mut u8 {
    if len == 0 {
        return std::ptr::NonNull::dangling().as_ptr();
    }
    let layout = Layout::array::<u8>(len).expect("len fits in memory");
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { std::alloc::alloc(layout) };
    if ptr.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    ptr
}

/// Runs an entry point's body on the input at `ptr` with the output buffer, then hands the
/// output to the host. `body` gets the input, the output (empty), the scratch space and the
/// session.
///
/// # Safety
/// `ptr` and `len` are what the host got from [`alloc`] and wrote.
pub unsafe fn call(
    ptr: *mut u8,
    len: usize,
    body: impl FnOnce(&[u8], &mut Vec<u8>, &mut Scratch, &mut Session) -> i32,
) -> i32 {
    // SAFETY: single-threaded; no other reference into the slot is held.
    let input = unsafe { INPUT.get() };
    // SAFETY: as this function's.
    unsafe { take_input(input, ptr, len) };
    run(&input.buffer, body)
}

/// [`call`] for a transform: a batch the host sends again right after the call that ran it
/// gets that call's output again, without running the module (see [`LastCall`]).
///
/// # Safety
/// As for [`call`].
pub unsafe fn call_transform(
    ptr: *mut u8,
    len: usize,
    body: impl FnOnce(&[u8], &mut Vec<u8>, &mut Scratch, &mut Session) -> i32,
) -> i32 {
    // SAFETY: single-threaded; the two slots are distinct and borrowed once each here.
    let (input, last) = unsafe { (INPUT.get(), LAST_CALL.get()) };
    // SAFETY: as this function's.
    unsafe { take_input(input, ptr, len) };
    let last = last.get_or_insert_with(LastCall::default);
    if let Some(status) = last.repeated(&input.buffer) {
        // SAFETY: single-threaded; the output slot is not borrowed elsewhere.
        hand_over(unsafe { OUTPUT.get() });
        return status;
    }
    let status = run(&input.buffer, body);
    last.remember(&mut input.buffer, status);
    let kept = last.input_mut();
    if kept.capacity() > RETAIN_BYTES && kept.len() <= RETAIN_BYTES {
        kept.shrink_to(RETAIN_BYTES);
    }
    status
}

/// Takes back the input buffer the host wrote (see [`alloc`]).
///
/// # Safety
/// `ptr` and `len` are what the host got from [`alloc`] and wrote.
unsafe fn take_input(input: &mut Input, ptr: *mut u8, len: usize) {
    if input.lent && ptr == input.buffer.as_mut_ptr() {
        input.lent = false;
        // SAFETY: the host wrote `len` bytes into the buffer `alloc` reserved for `len`.
        unsafe { input.buffer.set_len(len) };
    } else {
        // SAFETY: the host wrote `len` bytes at `ptr`, which `heap_alloc` allocated.
        let foreign = unsafe { std::slice::from_raw_parts(ptr, len) };
        input.buffer.clear();
        input.buffer.extend_from_slice(foreign);
        input.lent = false;
        if len > 0 {
            // SAFETY: allocated by `heap_alloc` with this layout.
            unsafe { std::alloc::dealloc(ptr, Layout::array::<u8>(len).expect("allocated")) };
        }
    }
}

/// Runs `body` with the output buffer (cleared), the scratch space and the session.
fn run(
    input: &[u8],
    body: impl FnOnce(&[u8], &mut Vec<u8>, &mut Scratch, &mut Session) -> i32,
) -> i32 {
    // SAFETY: single-threaded; these slots are distinct from the input's and borrowed once.
    let (output, scratch, session) = unsafe { (OUTPUT.get(), SCRATCH.get(), SESSION.get()) };
    output.clear();
    if output.capacity() > RETAIN_BYTES {
        output.shrink_to(RETAIN_BYTES);
    }
    let status = body(input, output, scratch, session);
    scratch.trim(RETAIN_BYTES);
    hand_over(output);
    status
}

/// Tells the host where the output is.
fn hand_over(output: &[u8]) {
    if !output.is_empty() {
        // SAFETY: the host import reads `output`, which stays untouched until the next call.
        unsafe { copy_records(output.as_ptr() as i32, output.len() as i32) };
    }
}
