//! The decode's pixel buffer, kept between renders on a thread: a decode of tens of megabytes
//! would otherwise come from the kernel page by page on every image.

/// The largest decode buffer a thread keeps between renders: a 16 MP RGB decode. Bigger ones are
/// freed as usual, so what stays resident between images is bounded whatever the last one was.
const KEEP_MAX: usize = 48 << 20;

thread_local! {
    /// The last decode's pixel buffer, kept for the next decode on this thread. A decode of tens of
    /// megabytes is above glibc's largest `mmap` threshold (32 MiB), so a fresh one comes from the
    /// kernel page by page: measured at ~13% of a full-size 12 MP JPEG render (bench/PROFILE.md).
    /// A processor renders its batch one image at a time on one blocking thread, so this is one
    /// buffer per processor process.
    static KEPT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A zero-filled buffer of `len` bytes: the thread's kept buffer when it is large enough (zeroed
/// again, so nothing of an earlier image can reach this one), else a fresh one.
pub(super) fn pixel_buffer(len: usize) -> Vec<u8> {
    let mut buf = KEPT.with_borrow_mut(std::mem::take);
    if buf.capacity() < len {
        // Freed first, so the two are never held together.
        drop(buf);
        return vec![0; len];
    }
    buf.clear();
    buf.resize(len, 0);
    buf
}

/// Hands a decode's buffer back once the render no longer needs it (see [`KEPT`]).
pub(crate) fn recycle(buf: Vec<u8>) {
    if buf.capacity() <= KEEP_MAX {
        KEPT.with_borrow_mut(|kept| {
            if buf.capacity() > kept.capacity() {
                *kept = buf;
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_buffer_is_reused_zeroed_and_a_huge_one_is_not_kept() {
        let mut first = pixel_buffer(1 << 20);
        first.fill(0xAB);
        let ptr = first.as_ptr();
        recycle(first);
        let again = pixel_buffer(1 << 19);
        assert_eq!(
            again.as_ptr(),
            ptr,
            "the kept buffer serves a smaller decode"
        );
        assert!(
            again.iter().all(|&b| b == 0),
            "nothing of the last image is left"
        );
        recycle(again);
        recycle(Vec::with_capacity(KEEP_MAX + 1));
        let kept = pixel_buffer(1);
        assert_eq!(kept.as_ptr(), ptr, "a buffer over KEEP_MAX is not kept");
    }
}
