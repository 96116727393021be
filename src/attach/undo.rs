//! One undo guard per transaction: each step that changed something pushes
//! how to take it back; `commit` keeps everything, and dropping the guard
//! without it (an early `?` return, an error) undoes the steps in reverse
//! order, best effort, each failure logged. This replaces flags,
//! out-parameters and rollback code written at every exit.

use crate::cni::CniError;
use crate::sys::log::{Level, log_at};

type Step<'a> = Box<dyn FnOnce() -> Result<(), CniError> + 'a>;

#[must_use = "dropping the guard undoes everything at once; call commit() on success"]
pub(crate) struct Undo<'a> {
    steps: Vec<(String, Step<'a>)>,
}

impl<'a> Undo<'a> {
    pub(crate) fn new() -> Undo<'a> {
        Undo { steps: Vec::new() }
    }

    /// Register how to undo a step that just succeeded; `what` names it in
    /// the log ("deleting eth0").
    pub(crate) fn push(
        &mut self,
        what: impl Into<String>,
        undo: impl FnOnce() -> Result<(), CniError> + 'a,
    ) {
        self.steps.push((what.into(), Box::new(undo)));
    }

    /// The transaction succeeded: keep everything.
    pub(crate) fn commit(mut self) {
        self.steps.clear();
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        while let Some((what, undo)) = self.steps.pop() {
            if let Err(e) = undo() {
                log_at!(Level::Warn, "rollback: {what} failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn drop_undoes_in_reverse_and_commit_keeps() {
        let log = RefCell::new(Vec::new());
        {
            let mut u = Undo::new();
            u.push("a", || {
                log.borrow_mut().push("a");
                Ok(())
            });
            u.push("b", || {
                log.borrow_mut().push("b");
                Err(CniError::internal("b failed"))
            });
            u.push("c", || {
                log.borrow_mut().push("c");
                Ok(())
            });
        }
        assert_eq!(
            *log.borrow(),
            ["c", "b", "a"],
            "reverse order, past a failure"
        );
        log.borrow_mut().clear();
        let mut u = Undo::new();
        u.push("a", || {
            log.borrow_mut().push("a");
            Ok(())
        });
        u.commit();
        assert!(log.borrow().is_empty());
    }
}
