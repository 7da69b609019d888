//! Typed label sets with fixed cardinality: the [`LabelSet`] trait, the
//! [`label_enum!`](crate::label_enum) macro, and tuples of label sets.
//!
//! Owns: the mapping from a label value to a dense index, fixed at compile
//! time. Must not: hash, allocate or lock (a lookup is arithmetic).

/// A set of labels whose possible values are known at compile time and map
/// to a dense index `0..CARDINALITY`.
///
/// Implemented by enums declared with [`label_enum!`](crate::label_enum),
/// and by tuples of up to four such types (the cardinality multiplies).
/// A [`Family`](crate::Family) keyed by a `LabelSet` is a boxed slice of
/// series: a lookup is an index, with no hash, lock or allocation.
pub trait LabelSet: Copy + Send + Sync + 'static {
    /// Number of labels in the set.
    const LABELS: usize;
    /// Number of distinct values of the set.
    const CARDINALITY: usize;
    /// The name of label `label` (`0..LABELS`).
    fn label_name(label: usize) -> &'static str;
    /// The value of label `label` in the set with dense index `index`.
    fn label_value(index: usize, label: usize) -> &'static str;
    /// This value's dense index, in `0..CARDINALITY`.
    fn index(self) -> usize;
}

/// Declares a fieldless enum that is a one-label [`LabelSet`].
///
/// ```
/// hotmeter::label_enum! {
///     /// Outcome of a write.
///     pub enum Status: "status" {
///         Success = "success",
///         Error = "error",
///     }
/// }
/// use hotmeter::LabelSet;
/// assert_eq!(Status::CARDINALITY, 2);
/// assert_eq!(Status::Error.index(), 1);
/// assert_eq!(Status::label_value(1, 0), "error");
/// assert_eq!(<(Status, Status)>::CARDINALITY, 4);
/// ```
#[macro_export]
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident : $label:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* #[doc = concat!("`", $label, "=\"", $value, "\"`")] $variant ),+
        }

        impl $name {
            /// Every value, in index order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),+ ];
            const VALUES: &'static [&'static str] = &[ $( $value ),+ ];

            /// The label value this variant exports.
            pub const fn as_str(self) -> &'static str {
                Self::VALUES[self as usize]
            }
        }

        impl $crate::LabelSet for $name {
            const LABELS: usize = 1;
            const CARDINALITY: usize = Self::VALUES.len();
            fn label_name(_label: usize) -> &'static str {
                $label
            }
            fn label_value(index: usize, _label: usize) -> &'static str {
                Self::VALUES[index]
            }
            #[inline(always)]
            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

macro_rules! tuple_label_set {
    ($($t:ident $v:ident),+) => {
        impl<$($t: LabelSet),+> LabelSet for ($($t,)+) {
            const LABELS: usize = 0 $(+ $t::LABELS)+;
            const CARDINALITY: usize = 1 $(* $t::CARDINALITY)+;
            fn label_name(mut label: usize) -> &'static str {
                $(
                    if label < $t::LABELS {
                        return $t::label_name(label);
                    }
                    label -= $t::LABELS;
                )+
                let _ = label;
                ""
            }
            fn label_value(index: usize, mut label: usize) -> &'static str {
                // Row-major: the last element varies fastest.
                let mut stride = Self::CARDINALITY;
                $(
                    stride /= $t::CARDINALITY;
                    if label < $t::LABELS {
                        return $t::label_value((index / stride) % $t::CARDINALITY, label);
                    }
                    label -= $t::LABELS;
                )+
                let _ = (label, stride);
                ""
            }
            #[inline(always)]
            fn index(self) -> usize {
                let ($($v,)+) = self;
                let mut i = 0;
                $( i = i * $t::CARDINALITY + $v.index(); )+
                i
            }
        }
    };
}

tuple_label_set!(A a);
tuple_label_set!(A a, B b);
tuple_label_set!(A a, B b, C c);
tuple_label_set!(A a, B b, C c, D d);

#[cfg(test)]
#[allow(unreachable_pub, dead_code)]
mod tests {
    use super::*;

    crate::label_enum! {
        /// Test priority.
        pub enum Priority: "priority" { High = "high", Normal = "normal", Low = "low" }
    }
    crate::label_enum! {
        /// Test status.
        pub enum Status: "status" { Ok = "ok", Err = "error" }
    }

    #[test]
    fn tuples_are_dense_and_decode() {
        type P = (Priority, Status);
        assert_eq!(P::LABELS, 2);
        assert_eq!(P::CARDINALITY, 6);
        assert_eq!((P::label_name(0), P::label_name(1)), ("priority", "status"));
        let mut seen = [false; P::CARDINALITY];
        for &p in Priority::ALL {
            for &s in Status::ALL {
                let i = (p, s).index();
                assert!(!seen[i], "index {i} twice");
                seen[i] = true;
                assert_eq!(P::label_value(i, 0), p.as_str());
                assert_eq!(P::label_value(i, 1), s.as_str());
            }
        }
        assert!(seen.iter().all(|&b| b));
    }
}
