//! The live side of a running server, for the program that embeds it: which associations are
//! established, and unsolicited InformationReports sent to one of them
//! ([`ServerHandle::report`](crate::server::ServerHandle::report)). The values themselves live
//! in the server's [`SharedModel`](secmms_mms::model::SharedModel), which the program sets,
//! reads and observes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use secmms_mms::server::{ReportContent, UnsolicitedError};
use tokio::sync::{mpsc, oneshot};

/// Identifies one association of a running server (unique for the server's lifetime).
pub type AssociationId = u64;

/// One established association of a running server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationInfo {
    /// Its identifier, for [`ServerHandle::report`](crate::server::ServerHandle::report).
    pub id: AssociationId,
    /// The peer, as the server's logs name it (address, and the authenticated identity once
    /// known).
    pub peer: String,
    /// What protects it at the application layer, in words.
    pub protection: String,
}

/// Why a report was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No established association has this identifier (it ended, or never existed).
    #[error("no established association {0}")]
    NoAssociation(AssociationId),
    /// The report could not be built for this association (values unreadable, the client did
    /// not announce the informationReport service, too large, MMS concluded).
    #[error(transparent)]
    Unsolicited(#[from] UnsolicitedError),
    /// The association's application-layer protection refused to send it.
    #[error("the association's protection refused the report: {0}")]
    Protection(String),
    /// The association ended before the report was handed to it.
    #[error("the association ended before the report went out")]
    Ended,
}

/// What the program asks of one association's task.
pub(crate) enum AssocCmd {
    Report {
        content: ReportContent,
        reply: oneshot::Sender<Result<(), ReportError>>,
    },
}

/// Queue depth of one association's commands.
const COMMAND_QUEUE: usize = 64;

/// The established associations of one server and their command channels.
#[derive(Default)]
pub(crate) struct Registry {
    next: AtomicU64,
    live: Mutex<HashMap<AssociationId, (AssociationInfo, mpsc::Sender<AssocCmd>)>>,
}

/// Removes an association from the registry when its task ends.
pub(crate) struct Registered<'a> {
    registry: &'a Registry,
    id: AssociationId,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

type Live = HashMap<AssociationId, (AssociationInfo, mpsc::Sender<AssocCmd>)>;

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an established association; it stays until the guard is dropped.
    pub(crate) fn register(
        &self,
        peer: String,
        protection: String,
    ) -> (Registered<'_>, mpsc::Receiver<AssocCmd>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let info = AssociationInfo {
            id,
            peer,
            protection,
        };
        self.lock().insert(id, (info, tx));
        (Registered { registry: self, id }, rx)
    }

    /// The established associations, by identifier.
    pub(crate) fn associations(&self) -> Vec<AssociationInfo> {
        let mut v: Vec<_> = self.lock().values().map(|(i, _)| i.clone()).collect();
        v.sort_by_key(|i| i.id);
        v
    }

    /// Hands a report to association `id` and waits until it is queued for sending.
    pub(crate) async fn report(
        &self,
        id: AssociationId,
        content: ReportContent,
    ) -> Result<(), ReportError> {
        let tx = self
            .lock()
            .get(&id)
            .map(|(_, tx)| tx.clone())
            .ok_or(ReportError::NoAssociation(id))?;
        let (reply, rx) = oneshot::channel();
        tx.send(AssocCmd::Report { content, reply })
            .await
            .map_err(|_| ReportError::Ended)?;
        rx.await.map_err(|_| ReportError::Ended)?
    }
}
