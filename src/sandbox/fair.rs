//! Who gets a policy worker next: trusted work has workers and a queue of its own, so no
//! tenant can delay it; tenants share theirs round-robin, one turn per tenant, and one tenant
//! may hold at most `per_tenant` checks running or waiting (the webhook sets it, so one user's
//! dry runs cannot fill the queue; the controller leaves it unset, its reconciles wait).
//!
//! [`Schedule`] is the pure bookkeeping (unit tested below); [`Lanes`] wraps it for async
//! callers, handing out [`Permit`]s that free their worker when dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::{Error, Result};

/// Whose policy work it is: the budget it draws from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Requester {
    /// scangate's namespace or a trusted namespace (the admin's policies and trusted scans).
    Trusted,
    /// A tenant: a user (the webhook's checks) or a namespace (the controller's evaluations).
    Tenant(String),
}

/// The bounds of each lane (trusted work and tenants' work each get them whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneLimits {
    /// Workers running at once.
    pub running: usize,
    /// Checks waiting for a worker; beyond this, refused at once.
    pub waiting: usize,
    /// Checks one tenant may have running or waiting at once; `None`: no bound but the lane's.
    pub per_tenant: Option<usize>,
}

/// A place in a queue.
type Ticket = u64;

/// What an arriving check gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// A worker is free: run now.
    Run,
    /// Wait until this ticket is granted.
    Wait(Ticket),
    /// Refused at once.
    Refused(Refusal),
}

/// Why a check was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The lane's workers are busy and its queue is full.
    Full,
    /// The tenant has its most checks in progress.
    TenantFull,
}

/// One lane: its running count and its waiting tickets, per tenant in turn order.
#[derive(Debug, Default)]
struct Lane {
    running: usize,
    waiting: usize,
    /// Tenants with waiting tickets, the next to be served first; trusted work is one tenant.
    turns: VecDeque<(Requester, VecDeque<Ticket>)>,
}

impl Lane {
    fn enqueue(&mut self, requester: &Requester, ticket: Ticket) {
        self.waiting += 1;
        match self.turns.iter_mut().find(|(r, _)| r == requester) {
            Some((_, tickets)) => tickets.push_back(ticket),
            None => self
                .turns
                .push_back((requester.clone(), VecDeque::from([ticket]))),
        }
    }

    /// The next ticket: the first of the tenant whose turn it is, who then goes to the back.
    fn next(&mut self) -> Option<(Requester, Ticket)> {
        let (requester, mut tickets) = self.turns.pop_front()?;
        let ticket = tickets.pop_front()?;
        self.waiting = self.waiting.saturating_sub(1);
        if !tickets.is_empty() {
            self.turns.push_back((requester.clone(), tickets));
        }
        Some((requester, ticket))
    }
}

/// One `T` per lane: the trusted lane's and the tenants'. The one place that says which lane a
/// requester's work takes.
#[derive(Debug, Default)]
pub struct ByLane<T> {
    trusted: T,
    tenants: T,
}

impl<T> ByLane<T> {
    pub fn of(&self, requester: &Requester) -> &T {
        match requester {
            Requester::Trusted => &self.trusted,
            Requester::Tenant(_) => &self.tenants,
        }
    }

    pub fn of_mut(&mut self, requester: &Requester) -> &mut T {
        match requester {
            Requester::Trusted => &mut self.trusted,
            Requester::Tenant(_) => &mut self.tenants,
        }
    }
}

/// The bookkeeping of both lanes. Every `Run` or granted ticket is ended with one
/// [`Schedule::finish`] of the same requester.
#[derive(Debug)]
pub struct Schedule {
    limits: LaneLimits,
    lanes: ByLane<Lane>,
    /// Each tenant's checks running or waiting.
    in_progress: HashMap<String, usize>,
    next_ticket: Ticket,
}

impl Schedule {
    #[must_use]
    pub fn new(limits: LaneLimits) -> Self {
        Self {
            limits: LaneLimits {
                running: limits.running.max(1),
                ..limits
            },
            lanes: ByLane::default(),
            in_progress: HashMap::new(),
            next_ticket: 0,
        }
    }

    fn lane(&mut self, requester: &Requester) -> &mut Lane {
        self.lanes.of_mut(requester)
    }

    /// A check arrives.
    pub fn arrive(&mut self, requester: &Requester) -> Arrival {
        let limits = self.limits;
        if let (Requester::Tenant(tenant), Some(most)) = (requester, limits.per_tenant)
            && self.in_progress.get(tenant).copied().unwrap_or(0) >= most
        {
            return Arrival::Refused(Refusal::TenantFull);
        }
        let ticket = self.next_ticket;
        let lane = self.lane(requester);
        let arrival = if lane.running < limits.running && lane.waiting == 0 {
            lane.running += 1;
            Arrival::Run
        } else if lane.waiting < limits.waiting {
            lane.enqueue(requester, ticket);
            Arrival::Wait(ticket)
        } else {
            return Arrival::Refused(Refusal::Full);
        };
        if matches!(arrival, Arrival::Wait(_)) {
            self.next_ticket += 1;
        }
        if let Requester::Tenant(tenant) = requester {
            *self.in_progress.entry(tenant.clone()).or_default() += 1;
        }
        arrival
    }

    /// A check of `requester` ended (it ran, or its granted ticket was no longer wanted): its
    /// worker goes to the next ticket of its lane, which this returns (it now runs).
    pub fn finish(&mut self, requester: &Requester) -> Option<Ticket> {
        if let Requester::Tenant(tenant) = requester
            && let Some(count) = self.in_progress.get_mut(tenant)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.in_progress.remove(tenant);
            }
        }
        let lane = self.lane(requester);
        lane.running = lane.running.saturating_sub(1);
        let (_, ticket) = lane.next()?;
        lane.running += 1;
        Some(ticket)
    }
}

/// The schedule shared by a pool's callers, and the waiters of its tickets.
#[derive(Debug)]
pub struct Lanes {
    limits: LaneLimits,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    schedule: Schedule,
    /// The waiting checks, by ticket, with whose they are.
    waiters: HashMap<Ticket, (Requester, oneshot::Sender<()>)>,
}

impl Lanes {
    #[must_use]
    pub fn new(limits: LaneLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            state: Mutex::new(State {
                schedule: Schedule::new(limits),
                waiters: HashMap::new(),
            }),
        })
    }

    /// Waits for a worker of the requester's lane, or refuses at once (naming the limit).
    pub async fn acquire(self: &Arc<Self>, requester: &Requester) -> Result<Permit> {
        let waiting = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match state.schedule.arrive(requester) {
                Arrival::Run => None,
                Arrival::Wait(ticket) => {
                    let (granted, wait) = oneshot::channel();
                    state.waiters.insert(ticket, (requester.clone(), granted));
                    Some(wait)
                }
                Arrival::Refused(refusal) => return Err(self.refused(requester, &refusal)),
            }
        };
        if let Some(wait) = waiting {
            // Dropped while waiting, this check holds nothing: its ticket, once granted, is
            // passed on (see `release`). A sender is dropped only with the pool.
            wait.await
                .map_err(|_| self.refused(requester, &Refusal::Full))?;
        }
        Ok(Permit {
            lanes: Arc::clone(self),
            requester: requester.clone(),
        })
    }

    fn refused(&self, requester: &Requester, refusal: &Refusal) -> Error {
        match (refusal, requester) {
            (Refusal::TenantFull, Requester::Tenant(tenant)) => Error::TenantBusy {
                tenant: tenant.clone(),
                most: self.limits.per_tenant.unwrap_or_default(),
            },
            _ => Error::Busy {
                running: self.limits.running.max(1),
                waiting: self.limits.waiting,
            },
        }
    }

    /// Frees a worker: it goes to the next waiting check that still wants it.
    fn release(&self, requester: &Requester) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ended = requester.clone();
        while let Some(ticket) = state.schedule.finish(&ended) {
            let Some((next, granted)) = state.waiters.remove(&ticket) else {
                return;
            };
            if granted.send(()).is_ok() {
                return;
            }
            // That check is no longer waited for (its request was dropped): pass the worker on.
            ended = next;
        }
    }
}

/// A worker of a lane, held while a check runs.
#[derive(Debug)]
pub struct Permit {
    lanes: Arc<Lanes>,
    requester: Requester,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.lanes.release(&self.requester);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> Requester {
        Requester::Tenant(name.into())
    }

    fn limits(per_tenant: Option<usize>) -> LaneLimits {
        LaneLimits {
            running: 2,
            waiting: 4,
            per_tenant,
        }
    }

    #[test]
    fn one_tenant_cannot_hold_more_than_its_share() {
        let mut s = Schedule::new(limits(Some(2)));
        assert_eq!(s.arrive(&tenant("mallory")), Arrival::Run);
        assert_eq!(s.arrive(&tenant("mallory")), Arrival::Run);
        for _ in 0..14 {
            assert_eq!(
                s.arrive(&tenant("mallory")),
                Arrival::Refused(Refusal::TenantFull)
            );
        }
        // Another tenant waits for a worker, the admin's own check runs at once.
        assert!(matches!(s.arrive(&tenant("alice")), Arrival::Wait(_)));
        assert_eq!(s.arrive(&Requester::Trusted), Arrival::Run);
        // When one of mallory's ends, her next is taken again.
        assert!(s.finish(&tenant("mallory")).is_some());
        assert!(matches!(s.arrive(&tenant("mallory")), Arrival::Wait(_)));
    }

    #[test]
    fn trusted_work_never_waits_on_tenants() {
        let mut s = Schedule::new(limits(None));
        for i in 0..6 {
            let arrival = s.arrive(&tenant(&format!("t{i}")));
            assert!(!matches!(arrival, Arrival::Refused(_)), "{arrival:?}");
        }
        assert_eq!(
            s.arrive(&tenant("t7")),
            Arrival::Refused(Refusal::Full),
            "the tenants' lane is full"
        );
        assert_eq!(s.arrive(&Requester::Trusted), Arrival::Run);
        assert_eq!(s.arrive(&Requester::Trusted), Arrival::Run);
        assert!(matches!(s.arrive(&Requester::Trusted), Arrival::Wait(_)));
    }

    #[test]
    fn waiting_tenants_are_served_in_turn() {
        let mut s = Schedule::new(LaneLimits {
            running: 1,
            waiting: 10,
            per_tenant: None,
        });
        assert_eq!(s.arrive(&tenant("busy")), Arrival::Run);
        let mut tickets = HashMap::new();
        for who in ["busy", "busy", "busy", "quiet", "other"] {
            let Arrival::Wait(ticket) = s.arrive(&tenant(who)) else {
                panic!("{who} should wait");
            };
            tickets.entry(ticket).or_insert(who);
        }
        let mut served = vec![];
        let mut running = tenant("busy");
        while let Some(ticket) = s.finish(&running) {
            let who = tickets[&ticket];
            served.push(who);
            running = tenant(who);
        }
        assert_eq!(served, ["busy", "quiet", "other", "busy", "busy"]);
    }

    #[test]
    fn a_finished_check_frees_its_tenants_share() {
        let mut s = Schedule::new(limits(Some(1)));
        assert_eq!(s.arrive(&tenant("a")), Arrival::Run);
        assert_eq!(s.finish(&tenant("a")), None);
        assert_eq!(s.arrive(&tenant("a")), Arrival::Run);
    }

    #[tokio::test]
    async fn a_dropped_waiter_passes_its_worker_on() -> Result<(), Box<dyn std::error::Error>> {
        let lanes = Lanes::new(LaneLimits {
            running: 1,
            waiting: 4,
            per_tenant: None,
        });
        let first = lanes.acquire(&tenant("a")).await?;
        let dropped = {
            let lanes = Arc::clone(&lanes);
            tokio::spawn(async move { lanes.acquire(&tenant("b")).await.map(drop) })
        };
        let next = {
            let lanes = Arc::clone(&lanes);
            tokio::spawn(async move { lanes.acquire(&tenant("c")).await })
        };
        tokio::task::yield_now().await;
        dropped.abort();
        let _ = dropped.await;
        drop(first);
        drop(next.await??);
        assert!(lanes.acquire(&tenant("d")).await.is_ok());
        Ok(())
    }
}
