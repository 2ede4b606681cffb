"""The detector: what each kind finds, what it must not, and how overlaps are settled."""

from __future__ import annotations

import itertools

import pytest

from edgeproxy.security.pii import KINDS, Detector, Match, iban_valid, luhn_valid

ALL = Detector(KINDS)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "Lxoo==\n"
    "-----END RSA PRIVATE KEY-----"
)


def found(text: str, detector: Detector = ALL) -> list[tuple[str, str]]:
    return [(m.kind, text[m.start : m.end]) for m in detector.find(text)]


# (text, the value found in it, its kind): each found alone, exactly.
TRUE_POSITIVES = [
    ("write to jane.doe+billing@example.co.uk today", "jane.doe+billing@example.co.uk", "email"),
    ("<a href='mailto:ops@sub.example.org'>", "ops@sub.example.org", "email"),
    ("E-Mail: Müller.K@firma.de.", "Müller.K@firma.de", "email"),
    ("call +1 (415) 555-2671 now", "+1 (415) 555-2671", "phone"),
    ("office: (415) 555-2671", "(415) 555-2671", "phone"),
    ("US 415-555-2671.", "415-555-2671", "phone"),
    ("dial 1-800-555-0199", "1-800-555-0199", "phone"),
    ("desk 415.555.2671", "415.555.2671", "phone"),
    ("London 020 7946 0958", "020 7946 0958", "phone"),
    ("mobile 07700 900123", "07700 900123", "phone"),
    ("Paris 06 12 34 56 78", "06 12 34 56 78", "phone"),
    ("Berlin +49 30 1234567", "+49 30 1234567", "phone"),
    ("E.164 +14155552671", "+14155552671", "phone"),
    ("call me at 4155552671", "4155552671", "phone"),
    ("visa 4111 1111 1111 1111 exp", "4111 1111 1111 1111", "credit_card"),
    ("mc 5555-5555-5555-4444", "5555-5555-5555-4444", "credit_card"),
    ("bare 4012888888881881.", "4012888888881881", "credit_card"),
    ("amex 3782 822463 10005", "3782 822463 10005", "credit_card"),
    ("amex 378282246310005", "378282246310005", "credit_card"),
    ("diners 3056 930902 5904", "3056 930902 5904", "credit_card"),
    ("discover 6011111111111117", "6011111111111117", "credit_card"),
    ("jcb 3530111333300000", "3530111333300000", "credit_card"),
    ("mastercard 2-series 2223003122003222", "2223003122003222", "credit_card"),
    ("IBAN DE89 3704 0044 0532 0130 00.", "DE89 3704 0044 0532 0130 00", "iban"),
    ("GB82WEST12345698765432", "GB82WEST12345698765432", "iban"),
    ("FR1420041010050500013M02606 is mine", "FR1420041010050500013M02606", "iban"),
    ("NO9386011117947", "NO9386011117947", "iban"),
    ("DE89 3704 0044 0532 0130 00 AND more", "DE89 3704 0044 0532 0130 00", "iban"),
    ("ssn 123-45-6789", "123-45-6789", "ssn"),
    ("SSN: 078 05 1121", "078 05 1121", "ssn"),
    ("my social security number is 219099998", "219099998", "ssn"),
    ("host 10.0.0.1.", "10.0.0.1", "ip"),
    ("from 203.0.113.77:8080", "203.0.113.77", "ip"),
    ("peer 255.255.255.255", "255.255.255.255", "ip"),
    ("v6 2001:db8::8a2e:370:7334 up", "2001:db8::8a2e:370:7334", "ip"),
    ("loopback ::1", "::1", "ip"),
    ("link fe80::1%eth0", "fe80::1%eth0", "ip"),
    ("mapped ::ffff:192.0.2.128", "::ffff:192.0.2.128", "ip"),
    (
        "full 2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "ip",
    ),
    (
        "key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "secret",
    ),
    (
        "legacy sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj9kLm",
        "sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj9kLm",
        "secret",
    ),
    (
        "ANTHROPIC_API_KEY=sk-ant-api03-Zx8_Yw7-Vu6Ts5Rq4Po3Nm2Lk1Jh0Gf9Ed8Cb7Az6",
        "sk-ant-api03-Zx8_Yw7-Vu6Ts5Rq4Po3Nm2Lk1Jh0Gf9Ed8Cb7Az6",
        "secret",
    ),
    (
        "google AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        "secret",
    ),
    ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", "secret"),
    ("session ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A", "secret"),
    (
        "gh ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "secret",
    ),
    (
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV",
        "secret",
    ),
    ("slack xoxb-2048-1024-Zx8Yw7Vu6Ts5", "xoxb-2048-1024-Zx8Yw7Vu6Ts5", "secret"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "secret"),
    (f"Authorization: Bearer {JWT}", JWT, "secret"),
    (f"key:\n{PEM}\nthanks", PEM, "secret"),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
        "-----END OPENSSH PRIVATE KEY-----",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
        "-----END OPENSSH PRIVATE KEY-----",
        "secret",
    ),
    (
        "truncated -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nthe rest",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nthe",
        "secret",
    ),
    (
        '{"pem": "-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5\\n'
        '-----END EC PRIVATE KEY-----"}',
        "-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5\\n"
        "-----END EC PRIVATE KEY-----",
        "secret",
    ),
]


@pytest.mark.parametrize(("text", "value", "kind"), TRUE_POSITIVES)
def test_finds_each_kind_exactly(text: str, value: str, kind: str) -> None:
    assert found(text) == [(kind, value)]


# Text that looks like a value of some kind and is not one: nothing may be found.
HARD_NEGATIVES = [
    # e-mail
    "decorators like @dataclass and @pytest.fixture",
    "the retina asset icon@2x.png",
    "npm install @types/node@20.1.0",
    "john..doe@example.com",
    # phone
    "order 2024-01-15 10:30:00, id 1741570283",
    "ref 4155552671",  # ten bare digits without a word that says phone
    "ISBN 978-0-306-40615-7",
    "fraction 0.1234567890",
    "a list: 10 20 30 40 50",
    "1 234 567 890 dollars",
    "build 20240115.1234",
    "order #ORD-2024-555-123-4567",
    "(123) 456-7890",  # area code cannot start with 1
    "port 555-0100",
    "scores 12-34-56-78-90",
    # credit card
    "invalid luhn 4111 1111 1111 1112",
    "order id 1234567812345678",
    "timestamp ms 1741570283123",
    "digits 0000 0000 0000 0000",
    # IBAN
    "bad checksum DE89370400440532013001",
    "wrong length DE8937040044053201300",
    "unknown country ZZ12345678901234",
    "lowercase de89370400440532013000 is not how banks write it",
    # SSN
    "area 000-12-3456",
    "area 666-12-3456",
    "area 912-34-5678",
    "group 123-00-4567",
    "serial 123-45-0000",
    "bare 123456789 without context",
    "zip+4 12345-6789",
    # IP
    "999.1.1.1",
    "256.100.50.25",
    "version 1.2.3.4",
    "release v10.0.19041.1",
    "v1.2.3.4",
    "oid 1.3.6.1.4.1.311",
    "Section 1.2.3.4 of the spec",
    "see § 10.2.1.4",
    "padded 01.02.03.04",
    "time 12:30:45",
    "mac 00:1A:2B:3C:4D:5E",
    "C++ std::vector and a::b",
    "hex words dead::beef",
    "chrome/120.0.6099.109",
    # secrets
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "git 3f786850e387550fdab836ed7e6dc881de23001b",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "pip install scikit-learn; from sk-learn import nothing",
    "sk-abcdefghijklmnopqrstuvwxyzabcdefghij (letters only)",
    "the AKIA prefix alone",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
    "-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n"
    "-----END CERTIFICATE-----",
    "eyJub3QiOiJhIGp3dCBoZWFkZXIifQ.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc",  # no alg or typ
    "base64 image iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
]


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_finds_nothing_in_lookalikes(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("378282246310005", True),
        ("79927398713", True),
        ("79927398710", False),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("DE89370400440532013000", True),
        ("DE89370400440532013001", False),
        ("GB82WEST12345698765432", True),
        ("GB82WEST1234569876543", False),  # one character short for GB
        ("MT84MALT011000012345MTLCAST001S", True),
    ],
)
def test_iban_checksum_and_length(iban: str, valid: bool) -> None:
    assert iban_valid(iban) is valid


def test_only_the_configured_kinds_are_found() -> None:
    text = "mail a.b@example.com, card 4111 1111 1111 1111, host 10.0.0.1"
    assert found(text, Detector(["email", "ip"])) == [
        ("email", "a.b@example.com"),
        ("ip", "10.0.0.1"),
    ]
    assert found(text, Detector([])) == []


def test_unknown_kind_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="passport"):
        Detector(["email", "passport"])


def test_values_are_found_in_order_and_none_overlap() -> None:
    text = "a@example.com 4111 1111 1111 1111 10.0.0.1 a@example.com"
    matches = ALL.find(text)
    assert [m.kind for m in matches] == ["email", "credit_card", "ip", "email"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(matches))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The longer value wins: a card number is not read as a phone inside it.
        ("4111 1111 1111 1111", [("credit_card", "4111 1111 1111 1111")]),
        # An e-mail address whose local part is digits stays one address.
        ("4155552671@sms.example.com", [("email", "4155552671@sms.example.com")]),
        # A key wins over anything inside it.
        (f"t {JWT}", [("secret", JWT)]),
    ],
)
def test_the_longest_candidate_wins_what_it_contains(
    text: str, expected: list[tuple[str, str]]
) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A token in a URL's user part reads as an address too: it is one value, a secret.
        (
            "https://ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com/acme/app.git",
            [("secret", "ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com")],
        ),
        # A key glued to a private key's header: neither part is left in clear.
        (
            "sk-ant-api03-Zx8_Yw7-Vu6Ts5Rq4Po3Nm2Lk1" + PEM,
            [("secret", "sk-ant-api03-Zx8_Yw7-Vu6Ts5Rq4Po3Nm2Lk1" + PEM)],
        ),
    ],
)
def test_overlapping_candidates_become_one_value_of_the_most_specific_kind(
    text: str, expected: list[tuple[str, str]]
) -> None:
    assert found(text) == expected


def test_equal_overlaps_go_to_the_more_specific_kind() -> None:
    # Nine digits in 3-2-4 with dashes are an SSN, never also a phone (a phone needs more).
    assert found("ssn 123-45-6789") == [("ssn", "123-45-6789")]
    assert ALL.find("x 123-45-6789") == [Match("ssn", 2, 13)]


def test_context_words_must_be_close_to_the_value() -> None:
    near = "call 4155552671"
    far = "call " + "x" * 40 + " 4155552671"
    assert found(near) == [("phone", "4155552671")]
    assert found(far) == []


def test_a_long_text_without_values_finds_nothing() -> None:
    prose = "The quarterly report covers revenue, churn and hiring in 2024. " * 200
    assert ALL.find(prose) == []


def test_non_ascii_text_keeps_positions() -> None:
    text = "Schreiben Sie an jürgen@example.de (Büro) oder 030 12345678 — 谢谢 a@b.cn"
    assert found(text) == [
        ("email", "jürgen@example.de"),
        ("phone", "030 12345678"),
        ("email", "a@b.cn"),
    ]
