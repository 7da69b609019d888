//! The real thread-slot allocator (`SlotAllocator`, the code production
//! threads call on their first recording and from their exit destructor):
//! live threads hold distinct slots, and an exited thread's slot goes to the
//! next thread, never to two.
#![cfg(hotmeter_loom)]

use hotmeter::__loom::SlotAllocator;
use loom::sync::Arc;
use loom::thread;

#[test]
fn live_threads_hold_distinct_slots() {
    loom::model(|| {
        let slots = Arc::new(SlotAllocator::new());
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let slots = slots.clone();
                thread::spawn(move || slots.acquire())
            })
            .collect();
        let mine = slots.acquire();
        let got: Vec<usize> = ts.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(got[0] != got[1] && got[0] != mine && got[1] != mine, "two live threads share a slot: {got:?} {mine}");
        let mut all = vec![got[0], got[1], mine];
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2], "live threads are numbered densely");
    });
}

/// A thread exits (gives its slot back) while two others start: the freed
/// slot goes to exactly one of them.
#[test]
fn an_exited_threads_slot_goes_to_one_thread() {
    loom::model(|| {
        let slots = Arc::new(SlotAllocator::new());
        let first = slots.acquire();
        let s1 = slots.clone();
        let exiting = thread::spawn(move || s1.release(first));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let slots = slots.clone();
                thread::spawn(move || slots.acquire())
            })
            .collect();
        exiting.join().unwrap();
        let got: Vec<usize> = ts.into_iter().map(|t| t.join().unwrap()).collect();
        assert_ne!(got[0], got[1], "a reused slot was handed to two live threads");
        // After everyone exits, the lowest numbers come back first.
        for s in got {
            slots.release(s);
        }
        assert_eq!(slots.acquire(), 0, "the lowest free slot is handed out first");
    });
}
