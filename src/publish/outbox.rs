//! The bounded parts of publishing: the outbox that keeps only the latest
//! message per topic while the broker cannot take them (the older ones are
//! dropped and counted), and the per-camera counts that decide what changed.

use std::collections::{HashMap, VecDeque};

/// Messages waiting to be sent, at most one per topic, oldest topic first.
/// Its size is bounded by the number of topics, not by the outage's length.
#[derive(Debug)]
pub struct Outbox<M> {
    order: VecDeque<String>,
    latest: HashMap<String, M>,
    /// Messages replaced by a newer one for the same topic before being sent.
    pub dropped: u64,
}

impl<M> Default for Outbox<M> {
    fn default() -> Self {
        Outbox { order: VecDeque::new(), latest: HashMap::new(), dropped: 0 }
    }
}

impl<M> Outbox<M> {
    /// Queues `message` for `topic`, replacing (and counting as dropped) one
    /// still waiting there; the topic keeps its place in the line.
    pub fn push(&mut self, topic: &str, message: M) {
        match self.latest.get_mut(topic) {
            Some(old) => {
                *old = message;
                self.dropped += 1;
            }
            None => {
                self.latest.insert(topic.to_string(), message);
                self.order.push_back(topic.to_string());
            }
        }
    }

    /// Queues `message` unless something newer already waits for `topic`.
    pub fn push_if_absent(&mut self, topic: &str, message: M) {
        if !self.latest.contains_key(topic) {
            self.push(topic, message);
        }
    }

    /// The oldest waiting topic and its message.
    pub fn front(&self) -> Option<(&str, &M)> {
        let topic = self.order.front()?;
        Some((topic, &self.latest[topic]))
    }

    /// Removes the oldest waiting message (once it is handed on).
    pub fn pop(&mut self) -> Option<(String, M)> {
        let topic = self.order.pop_front()?;
        let message = self.latest.remove(&topic).expect("order and map agree");
        Some((topic, message))
    }

    /// The waiting messages (in no particular order), to rewrite in place.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut M)> {
        self.latest.iter_mut().map(|(t, m)| (t.as_str(), m))
    }

    /// The message waiting for `topic`, to rewrite in place.
    pub fn get_mut(&mut self, topic: &str) -> Option<&mut M> {
        self.latest.get_mut(topic)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// One camera's label counts as last published. `None` until the first frame.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    last: Vec<Option<u32>>,
}

/// A label whose count differs from the one last published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Index into the label list.
    pub label: usize,
    pub count: u32,
    /// From 0 (or nothing yet) to more: a snapshot goes out.
    pub rose: bool,
}

impl Counts {
    /// Takes this frame's counts (one per label) and returns what changed.
    /// The first frame publishes every label, zeros included, so that each
    /// state topic exists.
    pub fn update(&mut self, counts: &[u32]) -> Vec<Change> {
        self.last.resize(counts.len(), None);
        let mut changes = Vec::new();
        for (label, (&count, last)) in counts.iter().zip(self.last.iter_mut()).enumerate() {
            if *last != Some(count) {
                let rose = last.unwrap_or(0) == 0 && count > 0;
                changes.push(Change { label, count, rose });
                *last = Some(count);
            }
        }
        changes
    }
}

/// Counts the objects of each label: `classes` are the objects' class
/// names (slugged), `labels` the published ones.
pub fn count_labels<'a>(labels: &[String], classes: impl IntoIterator<Item = &'a str>) -> Vec<u32> {
    let mut counts = vec![0u32; labels.len()];
    for class in classes {
        if let Some(i) = labels.iter().position(|l| l == class) {
            counts[i] += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_keeps_the_latest_message_per_topic_and_counts_the_rest() {
        let mut out = Outbox::default();
        for frame in 0..1000 {
            out.push("yolod/cam/detections", frame);
            out.push("yolod/cam/person", frame % 3);
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out.dropped, 2 * 999);
        assert_eq!(out.pop(), Some(("yolod/cam/detections".to_string(), 999)));
        assert_eq!(out.pop(), Some(("yolod/cam/person".to_string(), 999 % 3)));
        assert!(out.pop().is_none() && out.is_empty());
    }

    #[test]
    fn topics_leave_the_outbox_in_the_order_they_first_came() {
        let mut out = Outbox::default();
        out.push("a", 1);
        out.push("b", 2);
        out.push("a", 3);
        assert_eq!(out.front(), Some(("a", &3)));
        let order: Vec<String> = std::iter::from_fn(|| out.pop()).map(|(t, _)| t).collect();
        assert_eq!(order, ["a", "b"]);
    }

    #[test]
    fn pushing_if_absent_never_replaces_a_newer_message() {
        let mut out = Outbox::default();
        out.push("count", "2 (new)");
        out.push_if_absent("count", "1 (state to republish)");
        out.push_if_absent("available", "online");
        assert_eq!(out.pop().unwrap().1, "2 (new)");
        assert_eq!(out.pop().unwrap().1, "online");
        assert_eq!(out.dropped, 0);
    }

    #[test]
    fn counts_publish_everything_first_then_only_changes() {
        let mut c = Counts::default();
        let first = c.update(&[0, 2]);
        assert_eq!(first, [Change { label: 0, count: 0, rose: false }, Change { label: 1, count: 2, rose: true }]);
        assert!(c.update(&[0, 2]).is_empty());
        assert_eq!(c.update(&[1, 2]), [Change { label: 0, count: 1, rose: true }]);
        assert_eq!(c.update(&[1, 3]), [Change { label: 1, count: 3, rose: false }]);
        assert_eq!(c.update(&[0, 3]), [Change { label: 0, count: 0, rose: false }]);
    }

    #[test]
    fn objects_are_counted_under_their_label_and_others_ignored() {
        let labels = vec!["person".to_string(), "traffic_light".to_string(), "dog".to_string()];
        let counts = count_labels(&labels, ["person", "bus", "person", "traffic_light"]);
        assert_eq!(counts, [2, 1, 0]);
    }
}
