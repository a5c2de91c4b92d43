//! A FIFO of monoid values with O(1) amortised aggregate queries ("two stacks").
//!
//! Sliding windows usually subtract what leaves the window from a running sum; with floating
//! point that accumulates error without bound. Two stacks never subtract: the front stack keeps,
//! for each element, the aggregate of it and everything newer in the front; the back keeps one
//! running aggregate. Each element is moved at most once, so every operation is O(1) amortised.

/// An aggregate with an identity (`Default`) and an associative `combine`.
pub trait Monoid: Copy + Default {
    /// `older` then `newer`.
    fn combine(older: Self, newer: Self) -> Self;
}

struct FrontEntry<K, A> {
    key: K,
    /// This element and everything newer than it in the front stack.
    suffix: A,
}

/// FIFO of `(key, value)` pairs, oldest at the front.
pub struct SlidingAggregate<K, A> {
    /// Oldest element last, so popping the oldest is `Vec::pop`.
    front: Vec<FrontEntry<K, A>>,
    /// Newest element last.
    back: Vec<(K, A)>,
    back_total: A,
}

impl<K: Copy, A: Monoid> Default for SlidingAggregate<K, A> {
    fn default() -> Self {
        Self {
            front: Vec::new(),
            back: Vec::new(),
            back_total: A::default(),
        }
    }
}

impl<K: Copy, A: Monoid> SlidingAggregate<K, A> {
    pub fn push(&mut self, key: K, value: A) {
        self.back.push((key, value));
        self.back_total = A::combine(self.back_total, value);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.front.len() + self.back.len()
    }

    /// Key of the oldest element.
    pub fn oldest_key(&mut self) -> Option<K> {
        self.refill_front();
        self.front.last().map(|e| e.key)
    }

    /// Key of the oldest element, without moving anything between the stacks.
    pub fn oldest_key_if_any(&self) -> Option<K> {
        self.front
            .last()
            .map(|e| e.key)
            .or(self.back.first().map(|e| e.0))
    }

    /// Removes the oldest element.
    pub fn pop_oldest(&mut self) {
        self.refill_front();
        self.front.pop();
    }

    /// Aggregate of every element.
    pub fn total(&self) -> A {
        match self.front.last() {
            Some(oldest) => A::combine(oldest.suffix, self.back_total),
            None => self.back_total,
        }
    }

    /// Aggregate of every element but the oldest.
    pub fn total_without_oldest(&mut self) -> A {
        self.refill_front();
        match self.front.len() {
            0 => A::default(),
            1 => self.back_total,
            n => A::combine(self.front[n - 2].suffix, self.back_total),
        }
    }

    /// Moves the back stack to the front when the front is empty, newest first; returns the
    /// oldest key moved when it did.
    pub fn refill_front(&mut self) -> Option<K> {
        if !self.front.is_empty() || self.back.is_empty() {
            return None;
        }
        let oldest = self.back[0].0;
        let mut suffix = A::default();
        self.front.reserve(self.back.len());
        for (key, value) in self.back.drain(..).rev() {
            suffix = A::combine(value, suffix);
            self.front.push(FrontEntry { key, suffix });
        }
        self.back_total = A::default();
        Some(oldest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Copy, Default, Debug, PartialEq)]
    struct Sum(i64);
    impl Monoid for Sum {
        fn combine(a: Self, b: Self) -> Self {
            Sum(a.0 + b.0)
        }
    }

    proptest! {
        #[test]
        fn matches_a_plain_queue(ops in prop::collection::vec(prop::option::of(-100i64..100), 0..300)) {
            let mut fast = SlidingAggregate::<usize, Sum>::default();
            let mut plain = std::collections::VecDeque::new();
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Some(v) => { fast.push(i, Sum(v)); plain.push_back((i, v)); }
                    None => { fast.pop_oldest(); plain.pop_front(); }
                }
                prop_assert_eq!(fast.len(), plain.len());
                prop_assert_eq!(fast.total().0, plain.iter().map(|e| e.1).sum::<i64>());
                prop_assert_eq!(fast.oldest_key(), plain.front().map(|e| e.0));
                prop_assert_eq!(fast.total_without_oldest().0, plain.iter().skip(1).map(|e| e.1).sum::<i64>());
            }
        }
    }
}
