//! The hash maps that hold an item per entry or more (slots, ids, hit
//! slots): foldhash, several times SipHash's speed on these small keys (a
//! 1M-entry list is 1.4M slots). Its seed is random per process, so crafted
//! keys cannot aim at one bucket.

pub type FastMap<K, V> = foldhash::HashMap<K, V>;
pub type FastSet<T> = foldhash::HashSet<T>;
