"""The memory-per-customer figure reads the samples it is given, not a constant."""
from bench.sender_memory import growth_kb_per_sender

SAMPLES = [{"senders": 0, "rasa": 900.0}, {"senders": 1000, "rasa": 950.0},
           {"senders": 2000, "rasa": 950.0}, {"senders": 3000, "rasa": 951.0}]


def test_growth_per_sender_is_kilobytes_per_customer_between_two_samples() -> None:
    assert growth_kb_per_sender(SAMPLES, "rasa", 0, 1) == 51.2   # 50 MB over 1,000 customers
    assert growth_kb_per_sender(SAMPLES, "rasa", 1, 2) == 0.0
    assert growth_kb_per_sender(SAMPLES, "rasa", 2, 3) == 1.02
