//! Pacing: when each request is due, and on which lane. One [`Pacer`] feeds the one
//! attack loop ([`crate::attack`]), whatever the load model:
//!
//! - **Open** (`--rate`, `--stages`, breakpoint steps): arrivals on a fixed schedule,
//!   independent of answers; they share a connection pool and are capped by
//!   `--max-in-flight` (beyond it a due request is dropped, never queued).
//! - **Users** (`--users`, the closed model): each user is a lane with its own
//!   connection; its next request is due when its answer came and its think time
//!   passed.
//! - **Routines** (`--command-every`, …): each simulated device is a lane with its own
//!   connection and one timer per action; a tick due while the device's previous
//!   request still runs waits for it (its latency counts from the tick), and a second
//!   tick of the same action while one waits is skipped and counted as dropped, as a
//!   device's single-threaded loop would skip it.
//!
//! A pacer only decides times; it never sleeps. The loop asks [`Pacer::next`] and
//! tells it when a lane's request finished.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::schedule::{Arrivals, Schedule, Segment};

/// A request that is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Its number in the run's sequence (seeds its random choices).
    pub k: u64,
    pub due: Instant,
    /// When it could first be issued: its due time, or, for a routine's tick that
    /// waited for its device's previous request, when that request ended. The
    /// generator's own lateness (schedule lag) is counted from here.
    pub ready: Instant,
    /// The lane that owns it, when lanes own connections (users, devices).
    pub lane: Option<u32>,
    /// Which of the scenario's actions, when the pacer decides it (routines).
    pub action: Option<u8>,
}

/// What the loop should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Issue this now.
    Due(Arrival),
    /// Nothing is due before this instant.
    At(Instant),
    /// Nothing is due until a lane's request finishes.
    AwaitCompletion,
    /// Nothing more will ever be due.
    Done,
}

/// A pacer's plan, before its clock starts.
#[derive(Clone, Debug)]
pub enum Pace {
    Open(Schedule),
    Users { users: u32, think: (Duration, Duration), length: Duration },
    Routines { devices: u32, periods: Vec<Duration>, jitter: f64, length: Duration },
}

impl Pace {
    /// The pacer, its clock starting at `start`, for `segment`'s share.
    pub fn start(&self, start: Instant, segment: Segment, seed: u64) -> Pacer {
        match self {
            Pace::Open(schedule) => Pacer::Open(Open::new(schedule.clone(), segment, start)),
            Pace::Users { users, think, length } => Pacer::Users(Users::new(*users, *think, *length, seed, start)),
            Pace::Routines { devices, periods, jitter, length } => {
                Pacer::Routines(Routines::new(*devices, periods.clone(), *jitter, *length, segment, seed, start))
            }
        }
    }
}

/// How load is paced; see the module documentation.
pub enum Pacer {
    Open(Open),
    Users(Users),
    Routines(Routines),
}

impl Pacer {
    pub fn next(&mut self, now: Instant) -> Next {
        match self {
            Pacer::Open(open) => open.next(now),
            Pacer::Users(users) => users.next(now),
            Pacer::Routines(routines) => routines.next(now),
        }
    }

    /// A lane's request finished at `at`.
    pub fn finished(&mut self, lane: u32, at: Instant) {
        match self {
            Pacer::Open(_) => {}
            Pacer::Users(users) => users.finished(lane, at),
            Pacer::Routines(routines) => routines.finished(lane, at),
        }
    }

    /// When the schedule ends.
    pub fn end(&self) -> Instant {
        match self {
            Pacer::Open(open) => open.end,
            Pacer::Users(users) => users.end,
            Pacer::Routines(routines) => routines.end,
        }
    }

    /// How many lanes own connections (`None`: the open model's shared pool).
    pub fn lanes(&self) -> Option<u32> {
        match self {
            Pacer::Open(_) => None,
            Pacer::Users(users) => Some(users.lanes),
            Pacer::Routines(routines) => Some(routines.lanes),
        }
    }

    /// The rate the schedule offers at `at` since its start (`None` for the closed
    /// models, which offer what they manage).
    pub fn rate_at(&self, at: Duration) -> Option<f64> {
        match self {
            Pacer::Open(open) => Some(open.schedule.rate_at(at)),
            Pacer::Users(_) | Pacer::Routines(_) => None,
        }
    }

    /// Ticks skipped since last asked (routines: a second tick while one waited).
    pub fn take_skipped(&mut self) -> u64 {
        match self {
            Pacer::Routines(routines) => std::mem::take(&mut routines.skipped),
            Pacer::Open(_) | Pacer::Users(_) => 0,
        }
    }

    /// Gives up on everything still to be issued (the schedule is over and the
    /// generator is behind it); returns how many arrivals that was, for the dropped
    /// count.
    pub fn abandon(&mut self) -> u64 {
        match self {
            Pacer::Open(open) => {
                let left = open.arrivals.remaining() + u64::from(open.peeked.is_some());
                open.peeked = None;
                open.arrivals = Schedule::new(Vec::new()).arrivals(Segment::WHOLE);
                left
            }
            Pacer::Users(users) => {
                users.ready.clear();
                0
            }
            Pacer::Routines(routines) => {
                let waiting = routines.waiting.iter().filter(|due| due.is_some()).count() as u64;
                let released = routines.released.len() as u64;
                routines.timers.clear();
                routines.waiting.iter_mut().for_each(|due| *due = None);
                routines.released.clear();
                std::mem::take(&mut routines.skipped) + waiting + released
            }
        }
    }
}

/// The open model: a schedule's arrivals for one segment.
pub struct Open {
    start: Instant,
    end: Instant,
    schedule: Schedule,
    arrivals: Arrivals,
    peeked: Option<(u64, Duration)>,
}

impl Open {
    pub fn new(schedule: Schedule, segment: Segment, start: Instant) -> Self {
        let arrivals = schedule.arrivals(segment);
        Self { start, end: start + schedule.duration(), schedule, arrivals, peeked: None }
    }

    fn next(&mut self, now: Instant) -> Next {
        let Some((k, offset)) = self.peeked.take().or_else(|| self.arrivals.next()) else { return Next::Done };
        let due = self.start + offset;
        if due <= now {
            Next::Due(Arrival { k, due, ready: due, lane: None, action: None })
        } else {
            self.peeked = Some((k, offset));
            Next::At(due)
        }
    }
}

/// The closed model: `lanes` users, each waiting for its answer, then thinking.
pub struct Users {
    lanes: u32,
    end: Instant,
    think: (Duration, Duration),
    /// Users ready (or thinking), by the instant they go again.
    ready: BinaryHeap<Reverse<(Instant, u32)>>,
    /// Users waiting for an answer.
    busy: u32,
    next_k: u64,
    rng: SmallRng,
}

impl Users {
    pub fn new(lanes: u32, think: (Duration, Duration), length: Duration, seed: u64, start: Instant) -> Self {
        let ready = (0..lanes).map(|lane| Reverse((start, lane))).collect();
        Self { lanes, end: start + length, think, ready, busy: 0, next_k: 0, rng: SmallRng::seed_from_u64(seed) }
    }

    fn next(&mut self, now: Instant) -> Next {
        match self.ready.peek() {
            Some(Reverse((due, _))) if *due <= now => {
                let Reverse((due, lane)) = self.ready.pop().expect("peeked");
                self.busy += 1;
                self.next_k += 1;
                Next::Due(Arrival { k: self.next_k - 1, due, ready: due, lane: Some(lane), action: None })
            }
            Some(Reverse((due, _))) => Next::At(*due),
            None if self.busy > 0 => Next::AwaitCompletion,
            // After the end no user comes back.
            None => Next::Done,
        }
    }

    fn finished(&mut self, lane: u32, at: Instant) {
        self.busy = self.busy.saturating_sub(1);
        let pause = if self.think.0 >= self.think.1 {
            self.think.0
        } else {
            self.rng.random_range(self.think.0..=self.think.1)
        };
        let again = at + pause;
        if again < self.end {
            self.ready.push(Reverse((again, lane)));
        }
    }
}

/// Per-device routines: each lane runs every action on its own period.
pub struct Routines {
    lanes: u32,
    end: Instant,
    periods: Vec<Duration>,
    jitter: f64,
    /// Timers: (due, lane, action).
    timers: BinaryHeap<Reverse<(Instant, u32, u8)>>,
    /// Ticks that came due while their lane was busy, waiting for it: lane × action.
    waiting: Vec<Option<Instant>>,
    /// Waiting ticks whose lane has become free, in the order they were due:
    /// (due, freed, lane, action).
    released: VecDeque<(Instant, Instant, u32, u8)>,
    busy: Vec<bool>,
    skipped: u64,
    next_k: u64,
    rng: SmallRng,
}

impl Routines {
    /// `periods[a]` is action a's period; `jitter` (a fraction below 1) varies each
    /// period by up to ± that share; the first tick of each timer falls at a random
    /// point of its first period, so devices do not march in step. Only the devices of
    /// `segment` (device d with d mod n = i) get timers.
    pub fn new(
        lanes: u32,
        periods: Vec<Duration>,
        jitter: f64,
        length: Duration,
        segment: Segment,
        seed: u64,
        start: Instant,
    ) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let end = start + length;
        // A zero period would tick forever at one instant; the options refuse it, and so does this.
        let periods: Vec<Duration> = periods.into_iter().map(|period| period.max(Duration::from_millis(1))).collect();
        let mut timers = BinaryHeap::with_capacity(lanes as usize * periods.len());
        for lane in (0..lanes).filter(|lane| segment.contains(u64::from(*lane))) {
            for (action, period) in periods.iter().enumerate() {
                let first = start + period.mul_f64(rng.random::<f64>());
                if first < end {
                    timers.push(Reverse((first, lane, action as u8)));
                }
            }
        }
        let slots = lanes as usize * periods.len();
        Self {
            lanes,
            end,
            jitter: jitter.clamp(0.0, 0.99),
            periods,
            timers,
            waiting: vec![None; slots],
            released: VecDeque::new(),
            busy: vec![false; lanes as usize],
            skipped: 0,
            next_k: 0,
            rng,
        }
    }

    fn arrival(&mut self, due: Instant, ready: Instant, lane: u32, action: u8) -> Next {
        self.busy[lane as usize] = true;
        self.next_k += 1;
        Next::Due(Arrival { k: self.next_k - 1, due, ready, lane: Some(lane), action: Some(action) })
    }

    fn next(&mut self, now: Instant) -> Next {
        if let Some((due, ready, lane, action)) = self.released.pop_front() {
            return self.arrival(due, ready, lane, action);
        }
        while let Some(Reverse((due, lane, action))) = self.timers.peek().copied() {
            if due > now {
                return Next::At(due);
            }
            self.timers.pop();
            let period = self.periods[usize::from(action)];
            let vary = if self.jitter > 0.0 { self.rng.random_range(-self.jitter..=self.jitter) } else { 0.0 };
            let again = due + period.mul_f64(1.0 + vary);
            if again < self.end {
                self.timers.push(Reverse((again, lane, action)));
            }
            if !self.busy[lane as usize] {
                return self.arrival(due, due, lane, action);
            }
            let slot = &mut self.waiting[lane as usize * self.periods.len() + usize::from(action)];
            if slot.is_some() {
                self.skipped += 1;
            } else {
                *slot = Some(due);
            }
        }
        if self.busy.iter().any(|busy| *busy) { Next::AwaitCompletion } else { Next::Done }
    }

    fn finished(&mut self, lane: u32, at: Instant) {
        self.busy[lane as usize] = false;
        let actions = self.periods.len();
        let slots = &mut self.waiting[lane as usize * actions..(lane as usize + 1) * actions];
        // The oldest waiting tick goes first; the others wait for the lane again.
        let oldest = slots.iter().enumerate().filter_map(|(action, due)| due.map(|due| (due, action))).min();
        if let Some((due, action)) = oldest {
            slots[action] = None;
            self.released.push_back((due, at.max(due), lane, action as u8));
            self.busy[lane as usize] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(pacer: &mut Pacer, now: Instant) -> Vec<Arrival> {
        let mut due = Vec::new();
        while let Next::Due(arrival) = pacer.next(now) {
            due.push(arrival);
        }
        due
    }

    #[test]
    fn open_arrivals_come_on_schedule_and_the_rest_count_as_dropped() {
        let start = Instant::now();
        let schedule = Schedule::constant(10.0, Duration::from_secs(1));
        let mut pacer = Pacer::Open(Open::new(schedule, Segment::WHOLE, start));
        let first = drain(&mut pacer, start + Duration::from_millis(250));
        assert_eq!(first.len(), 3, "due at 0, 100 and 200 ms");
        assert_eq!(pacer.next(start + Duration::from_millis(250)), Next::At(start + Duration::from_millis(300)));
        assert_eq!(pacer.take_skipped(), 0, "nothing is skipped while the schedule runs");
        assert_eq!(pacer.abandon(), 7);
        assert_eq!(pacer.next(start + Duration::from_secs(5)), Next::Done);
    }

    #[test]
    fn a_user_goes_again_only_after_its_answer_and_its_think_time() {
        let start = Instant::now();
        let think = (Duration::from_millis(100), Duration::from_millis(100));
        let mut pacer = Pacer::Users(Users::new(2, think, Duration::from_secs(1), 1, start));
        assert_eq!(drain(&mut pacer, start).len(), 2);
        assert_eq!(pacer.next(start + Duration::from_secs(3)), Next::AwaitCompletion);
        pacer.finished(1, start + Duration::from_millis(10));
        let again = start + Duration::from_millis(110);
        assert_eq!(pacer.next(start + Duration::from_millis(50)), Next::At(again));
        let due = drain(&mut pacer, again);
        assert_eq!(due, [Arrival { k: 2, due: again, ready: again, lane: Some(1), action: None }]);
        // After the end a user does not come back.
        pacer.finished(0, start + Duration::from_millis(950));
        assert_eq!(pacer.next(start + Duration::from_secs(2)), Next::AwaitCompletion, "user 1 still waits");
        pacer.finished(1, start + Duration::from_millis(990));
        assert_eq!(pacer.next(start + Duration::from_secs(2)), Next::Done);
    }

    #[test]
    fn a_busy_device_delays_its_tick_and_skips_the_second() {
        let start = Instant::now();
        let periods = vec![Duration::from_millis(100)];
        let routines = Routines::new(1, periods, 0.0, Duration::from_secs(10), Segment::WHOLE, 7, start);
        let mut pacer = Pacer::Routines(routines);
        let first = drain(&mut pacer, start + Duration::from_millis(100));
        assert_eq!(first.len(), 1);
        // Busy for 250 ms: the ticks at ~+100 and ~+200 come due; one waits, one is skipped.
        let late = first[0].due + Duration::from_millis(250);
        assert!(drain(&mut pacer, late).is_empty());
        assert_eq!(pacer.take_skipped(), 1);
        pacer.finished(0, late);
        let waited = drain(&mut pacer, late);
        assert_eq!(waited.len(), 1);
        assert_eq!(waited[0].due, first[0].due + Duration::from_millis(100), "latency runs from the tick");
        assert_eq!(waited[0].ready, late, "lateness from when the device was free again");
    }
}
