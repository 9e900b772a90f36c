#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::entrypoint::main(
        "payment-svc",
        payment_svc::Config::from_env,
        payment_svc::run,
    )
    .await
}
