#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::entrypoint::main("console", console::Config::from_env, console::run).await
}
