//! A second, unrelated saga defined with the same API: booking a trip (flight, hotel, car), each
//! step compensated when a later one fails, every request re-sent until its supplier answers,
//! and one timer over the whole booking.
//!
//! `cargo run -p saga-core --example trip_booking` validates it, walks one booking that fails at
//! the car and prints the compensations, the timer changes and what each reply confirms, then
//! prints the Mermaid and DOT diagrams.

use std::time::Duration;

use saga_core::{Confirmation, Deadline, Label, Outcome, Row, Table, TimerChange, labels};

labels! {
    /// Where a trip booking stands.
    pub enum Trip { Started, FlightHeld, HotelHeld, Booked, Abandoned }
}

labels! {
    /// What the trip saga hears from the suppliers, the traveller and its timer.
    pub enum Reply {
        FlightConfirmed, FlightRejected, FlightCancelled,
        HotelConfirmed, HotelRejected, HotelCancelled,
        CarConfirmed, CarRejected, CarCancelled,
        TravellerGaveUp,
        TimedOut,
    }
}

labels! {
    /// What the trip saga asks the suppliers for.
    pub enum Request { BookFlight, BookHotel, BookCar, CancelFlight, CancelHotel, CancelCar }
}

use Reply::*;
use Request::*;
use Trip::*;

pub static TRIP_BOOKING: Table<'static, Trip, Reply, Request> = Table {
    name: "TripBooking",
    initial: Started,
    start_effects: &[BookFlight],
    terminal: &[Booked, Abandoned],
    rows: &[
        Row::new(Started, FlightConfirmed, FlightHeld, &[BookHotel]),
        Row::new(Started, FlightRejected, Abandoned, &[]),
        Row::new(Started, TravellerGaveUp, Abandoned, &[]),
        Row::new(Started, TimedOut, Abandoned, &[]),
        Row::new(FlightHeld, HotelConfirmed, HotelHeld, &[BookCar]),
        Row::new(FlightHeld, HotelRejected, Abandoned, &[CancelFlight]),
        Row::new(FlightHeld, TravellerGaveUp, Abandoned, &[CancelFlight]),
        Row::new(FlightHeld, TimedOut, Abandoned, &[CancelFlight]),
        Row::new(HotelHeld, CarConfirmed, Booked, &[]),
        Row::new(
            HotelHeld,
            CarRejected,
            Abandoned,
            &[CancelHotel, CancelFlight],
        ),
        Row::new(
            HotelHeld,
            TravellerGaveUp,
            Abandoned,
            &[CancelHotel, CancelFlight],
        ),
        Row::new(HotelHeld, TimedOut, Abandoned, &[CancelHotel, CancelFlight]),
        // Confirmations that arrive after the booking was abandoned are cancelled at once.
        Row::new(Abandoned, FlightConfirmed, Abandoned, &[CancelFlight]),
        Row::new(Abandoned, HotelConfirmed, Abandoned, &[CancelHotel]),
        Row::new(Abandoned, CarConfirmed, Abandoned, &[CancelCar]),
    ],
    ignored: &[
        (FlightHeld, FlightConfirmed),
        (HotelHeld, FlightConfirmed),
        (HotelHeld, HotelConfirmed),
        (Booked, FlightConfirmed),
        (Booked, HotelConfirmed),
        (Booked, CarConfirmed),
        (Booked, TravellerGaveUp),
        (Abandoned, FlightRejected),
        (Abandoned, HotelRejected),
        (Abandoned, CarRejected),
        (Abandoned, TravellerGaveUp),
        // Cancellations only confirm the requests that asked for them.
        (Abandoned, FlightCancelled),
        (Abandoned, HotelCancelled),
        (Abandoned, CarCancelled),
        // A timer that fired as the booking finished changes nothing.
        (Booked, TimedOut),
        (Abandoned, TimedOut),
    ],
    // Suppliers hold an offer for fifteen minutes; the timer runs from the start of the booking.
    deadlines: &[Deadline::new(
        &[Started, FlightHeld, HotelHeld],
        Duration::from_secs(15 * 60),
        TimedOut,
    )],
    // Every request is re-sent until its supplier decides; a cancellation until it is done.
    confirmations: &[
        Confirmation::new(BookFlight, &[FlightConfirmed, FlightRejected]),
        Confirmation::new(BookHotel, &[HotelConfirmed, HotelRejected]),
        Confirmation::new(BookCar, &[CarConfirmed, CarRejected]),
        Confirmation::new(CancelFlight, &[FlightCancelled]),
        Confirmation::new(CancelHotel, &[HotelCancelled]),
        Confirmation::new(CancelCar, &[CarCancelled]),
    ],
};

fn describe_timer(change: TimerChange<'_, Trip, Reply>) -> String {
    match change {
        TimerChange::Keep => "timer kept".to_owned(),
        TimerChange::Arm(deadline) => {
            format!("timer armed: {} in {:?}", deadline.event, deadline.after)
        }
        TimerChange::Clear => "timer cleared".to_owned(),
    }
}

fn main() {
    if let Err(invalid) = TRIP_BOOKING.validate() {
        eprintln!("{invalid}");
        std::process::exit(1);
    }
    println!(
        "{} is valid: {} rows, {} deadline(s), {} confirmed effects.\n",
        TRIP_BOOKING.name,
        TRIP_BOOKING.rows.len(),
        TRIP_BOOKING.deadlines.len(),
        TRIP_BOOKING.confirmations.len()
    );

    println!("A booking whose car is rejected:");
    let mut state = TRIP_BOOKING.initial;
    println!(
        "  start -> {state}, asks {:?}, {}",
        TRIP_BOOKING.start_effects,
        describe_timer(TRIP_BOOKING.timer_after(None, state))
    );
    for reply in [
        FlightConfirmed,
        HotelConfirmed,
        CarRejected,
        HotelConfirmed,
        HotelCancelled,
    ] {
        let outcome = TRIP_BOOKING.step(state, reply);
        let verdict = match outcome {
            Outcome::Transition { .. } => "moves",
            Outcome::Compensate { .. } => "compensates",
            Outcome::Duplicate { .. } => "ignores (duplicate)",
            Outcome::Invalid { .. } => "rejects (invalid)",
        };
        let asks: Vec<&str> = outcome
            .effects()
            .iter()
            .map(|effect| effect.name())
            .collect();
        let timer = match outcome {
            Outcome::Transition { from, to, .. } => {
                describe_timer(TRIP_BOOKING.timer_after(Some(from), to))
            }
            _ => describe_timer(TimerChange::Keep),
        };
        println!(
            "  {state} + {reply}: {verdict} -> {}, asks {asks:?}, confirms {:?}, {timer}",
            outcome.state(),
            TRIP_BOOKING.confirmed_by(reply)
        );
        state = outcome.state();
    }

    println!("\nMermaid:\n{}", TRIP_BOOKING.to_mermaid());
    println!("Graphviz DOT:\n{}", TRIP_BOOKING.to_dot());
}
