//! A small value of any type, stored in place: what a local message travels as when it
//! fits in four words, so that sending it costs no allocation (a `Box<dyn Any>` costs a
//! `malloc` on send and a `free` on receive, about a tenth of a message's instructions).
//! Larger values, or values aligned above a word, keep travelling boxed.

use std::any::TypeId;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit, align_of, size_of};

/// The room in place, in words.
const WORDS: usize = 4;
type Storage = MaybeUninit<[usize; WORDS]>;

/// What the erased value needs to be recognised and dropped.
struct VTable {
    type_id: fn() -> TypeId,
    drop_in_place: unsafe fn(*mut u8),
}

/// Per type, the table of a stored `T`.
struct VTableOf<T>(PhantomData<T>);

impl<T: 'static> VTableOf<T> {
    const VTABLE: VTable = VTable {
        type_id: TypeId::of::<T>,
        drop_in_place: drop_value::<T>,
    };
}

/// Drops the `T` at `p`.
///
/// # Safety
/// `p` points to a valid, initialised `T` that is not used afterwards.
unsafe fn drop_value<T>(p: *mut u8) {
    // SAFETY: the caller promises a live `T` at `p`, dropped once.
    unsafe { p.cast::<T>().drop_in_place() }
}

/// A `Send` value of some type `T` with `fits::<T>()`, erased.
pub(crate) struct SmallValue {
    vtable: &'static VTable,
    data: Storage,
    /// `Send` (only `Send` values go in) but not `Sync`: a shared reference could hand out
    /// `&T` to another thread, and `T` need not be `Sync`.
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl SmallValue {
    /// Whether a `T` can be stored in place.
    pub(crate) const fn fits<T>() -> bool {
        size_of::<T>() <= size_of::<Storage>() && align_of::<T>() <= align_of::<Storage>()
    }

    /// Stores `value`; `None` gives it back when it does not fit.
    pub(crate) fn new<T: Send + 'static>(value: T) -> Result<Self, T> {
        if !Self::fits::<T>() {
            return Err(value);
        }
        let mut data = Storage::uninit();
        // SAFETY: `fits` checked that a `T` fits in `data` and that `data` is aligned
        // enough for it; the storage is uninitialised and owned here.
        unsafe { data.as_mut_ptr().cast::<T>().write(value) };
        Ok(SmallValue {
            vtable: &VTableOf::<T>::VTABLE,
            data,
            _not_sync: PhantomData,
        })
    }

    /// The stored value's type.
    pub(crate) fn type_id(&self) -> TypeId {
        (self.vtable.type_id)()
    }

    pub(crate) fn is<T: 'static>(&self) -> bool {
        self.type_id() == TypeId::of::<T>()
    }

    /// A reference to the value when it is a `T`.
    pub(crate) fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        if self.is::<T>() {
            // SAFETY: the value stored is a `T` (same type id), initialised and aligned
            // (checked when stored); the borrow of `self` keeps it alive.
            Some(unsafe { &*self.data.as_ptr().cast::<T>() })
        } else {
            None
        }
    }

    /// Takes the value out as a `T`, or gives `self` back.
    pub(crate) fn downcast<T: 'static>(self) -> Result<T, Self> {
        if !self.is::<T>() {
            return Err(self);
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: the value stored is a `T`; `ManuallyDrop` keeps `Drop` from dropping it
        // again, so it is moved out exactly once.
        Ok(unsafe { this.data.as_ptr().cast::<T>().read() })
    }
}

impl Drop for SmallValue {
    fn drop(&mut self) {
        // SAFETY: `vtable` is the table of the type stored in `data`, which is live (a
        // `downcast` that moves it out skips this drop).
        unsafe { (self.vtable.drop_in_place)(self.data.as_mut_ptr().cast::<u8>()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its drops in a shared counter.
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn only_small_word_aligned_values_fit() {
        assert!(SmallValue::fits::<u64>());
        assert!(SmallValue::fits::<[u64; 4]>());
        assert!(SmallValue::fits::<()>());
        assert!(!SmallValue::fits::<[u64; 5]>());
        #[repr(align(64))]
        struct OverAligned(u8);
        assert!(!SmallValue::fits::<OverAligned>());
        assert!(SmallValue::new([0u8; 33]).is_err());
    }

    #[test]
    fn a_value_comes_back_only_as_its_own_type() {
        let v = SmallValue::new((7u32, String::from("seven"))).ok().unwrap();
        assert!(v.is::<(u32, String)>());
        assert!(v.downcast_ref::<u32>().is_none());
        assert_eq!(v.downcast_ref::<(u32, String)>().unwrap().1, "seven");
        let v = v.downcast::<String>().err().unwrap();
        let (n, s) = v.downcast::<(u32, String)>().ok().unwrap();
        assert_eq!((n, s.as_str()), (7, "seven"));
    }

    #[test]
    fn a_value_is_dropped_once_whether_taken_or_not() {
        let drops = Arc::new(AtomicUsize::new(0));
        let v = SmallValue::new(Counted(drops.clone())).ok().unwrap();
        drop(v);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped in place");
        let v = SmallValue::new(Counted(drops.clone())).ok().unwrap();
        let v = v.downcast::<u64>().err().unwrap();
        let taken = v.downcast::<Counted>().ok().unwrap();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "not dropped when moved out"
        );
        drop(taken);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }
}
