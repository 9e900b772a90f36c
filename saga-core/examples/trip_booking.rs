//! A second, unrelated saga defined with the same API: booking a trip (flight, hotel, car), each
//! step compensated when a later one fails.
//!
//! `cargo run -p saga-core --example trip_booking` validates it, walks one booking that fails at
//! the car and prints the compensations, then prints the Mermaid and DOT diagrams.

use saga_core::{Label, Outcome, Row, Table, labels};

labels! {
    /// Where a trip booking stands.
    pub enum Trip { Started, FlightHeld, HotelHeld, Booked, Abandoned }
}

labels! {
    /// What the trip saga hears from the suppliers.
    pub enum Reply {
        FlightConfirmed, FlightRejected,
        HotelConfirmed, HotelRejected,
        CarConfirmed, CarRejected,
        TravellerGaveUp,
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
        Row::new(FlightHeld, HotelConfirmed, HotelHeld, &[BookCar]),
        Row::new(FlightHeld, HotelRejected, Abandoned, &[CancelFlight]),
        Row::new(FlightHeld, TravellerGaveUp, Abandoned, &[CancelFlight]),
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
        // Confirmations that arrive after the traveller gave up are cancelled at once.
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
    ],
};

fn main() {
    if let Err(invalid) = TRIP_BOOKING.validate() {
        eprintln!("{invalid}");
        std::process::exit(1);
    }
    println!(
        "{} is valid: {} rows.\n",
        TRIP_BOOKING.name,
        TRIP_BOOKING.rows.len()
    );

    println!("A booking whose car is rejected:");
    let mut state = TRIP_BOOKING.initial;
    println!("  start -> {state}, asks {:?}", TRIP_BOOKING.start_effects);
    for reply in [FlightConfirmed, HotelConfirmed, CarRejected, HotelConfirmed] {
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
        println!(
            "  {state} + {reply}: {verdict} -> {}, asks {asks:?}",
            outcome.state()
        );
        state = outcome.state();
    }

    println!("\nMermaid:\n{}", TRIP_BOOKING.to_mermaid());
    println!("Graphviz DOT:\n{}", TRIP_BOOKING.to_dot());
}
