import pytest

from convmon.scoring.pii import iban_ok, luhn_ok, scan

CARD = "4111 1111 1111 1111"


@pytest.mark.parametrize(
    "text,types",
    [
        ("write to jane.doe+work@example.co.uk today", ["email"]),
        ("jane [at] example [dot] com", ["email"]),
        (f"my card is {CARD}, expiry 12/27", ["credit_card"]),
        ("pay with 5500-0000-0000-0004", ["credit_card"]),
        ("amex 378282246310005 please", ["credit_card"]),
        ("IBAN GB82 WEST 1234 5698 7654 32", ["iban"]),
        ("DE89370400440532013000", ["iban"]),
        ("the server is 10.0.12.7", ["ip_address"]),
        ("v6 address 2001:db8:85a3::8a2e:370:7334 here", ["ip_address"]),
        ("call +44 20 7946 0958", ["phone"]),
        ("my number is (415) 555-2671", ["phone"]),
        ("key sk-proj-Abcdefghijklmnopqrstuvwx0123", ["api_key"]),
        ("AKIAIOSFODNN7EXAMPLE", ["api_key"]),
        ("token ghp_" + "a1B2" * 9, ["api_key"]),
        ("xoxb-123456789012-abcdefghij", ["api_key"]),
        ("config: api_key=9f8e7d6c5b4a3210", ["api_key"]),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----", ["private_key"]),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0", ["api_key"]),
        ("mail a@b.io and card 4242424242424242", ["credit_card", "email"]),
    ],
)
def test_detects(text, types):
    assert scan(text).types == types


@pytest.mark.parametrize(
    "text",
    [
        "I'll meet you at 5 at the station",
        "it costs 1234 5678 9012 3456 dollars",  # 16 digits, fails Luhn
        "order number 123456789",
        "the meeting is on 2024-05-01 at 10:30",
        "GB82 is a nice code name",
        "pi is 3.14159265358979",
        "We sold 1,234,567 units in 2023",
        "the ratio is 16:9 on screen",
        "Use the @decorator syntax in Python",
        "I scored 300 out of 400",
        "a sketch for 0000 0000 0000 0000",
    ],
)
def test_no_false_positive(text):
    assert scan(text).types == []


# Evasions the README promises are caught.
@pytest.mark.parametrize(
    "text,kind",
    [
        ("4\u200b111\u200b1111\u200b1111\u200b1111", "credit_card"),  # zero-width spaces
        ("\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11", "credit_card"),
        ("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "credit_card"),  # spaced out
        ("4111-1111-1111-1111", "credit_card"),
        ("4111.1111.1111.1111", "credit_card"),
        ("\uff4a\uff41\uff4e\uff45\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d", "email"),
        ("jane\u200d@\u200bexample.com", "email"),
        ("jane(at)example(dot)com", "email"),
        ("\u202esk-proj-Abcdefghijklmnopqrstuvwx0123", "api_key"),  # bidi override
        ("G\u00adB82 WEST 1234 5698 7654 32", "iban"),  # soft hyphen
    ],
)
def test_evasions_caught(text, kind):
    assert kind in scan(text).types


# Evasions that are NOT caught (documented in the README); the test pins the known gap.
@pytest.mark.parametrize(
    "text",
    [
        "four one one one, one one one one, one one one one, one one one one",  # digits as words
        "j\u0430ne@ex\u0430mple.com".replace("@", " at "),  # homoglyphs + plain ' at '
        "4111 1111 1111 111 and then 1",  # split card with a trailing digit elsewhere
        "4155550132",  # a bare digit run with no phone word
        "Handy 0151 23456789",  # another country's national format, no "+", no English phone word
        "+1 555 123 4567",  # not a valid number, and no phone word before it
        "415 555 0132 415 555 0199",  # numbers run together with no phone word
        "hunter2 is my password",  # the value before the keyword
        "my password is correct horse battery staple",  # unquoted passphrase starting with a common word
        "536904399",  # nine bare digits with no "SSN" before them
    ],
)
def test_known_gaps(text):
    assert scan(text).types == []


def test_known_false_positive_version_shaped_like_an_ip():
    assert scan("see 1.2.3.4 for details").types == ["ip_address"]


def test_redaction_replaces_every_finding_and_keeps_the_rest():
    r = scan("Hi, I'm Ann: ann@example.com, card 4111111111111111, ip 192.168.0.1.")
    assert r.redacted == "Hi, I'm Ann: [EMAIL], card [CREDIT_CARD], ip [IP_ADDRESS]."
    assert r.count == 3 and r.types == ["credit_card", "email", "ip_address"]
    assert "4111" not in r.redacted and "ann@" not in r.redacted


def test_clean_text_is_unchanged():
    text = "Nothing sensitive here, just a question about pasta."
    assert scan(text).redacted == text and scan(text).count == 0


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")


# --- gaps found by the security review (each of these failed on the pre-phonenumbers detector) ---

AZURE = ("DefaultEndpointsProtocol=https;AccountName=mystorage01;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50u"
         "SRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net")


@pytest.mark.parametrize(
    "text,types",
    [
        # passwords stated in prose or as pwd/passwd
        ("my password is hunter2", ["password"]),
        ("pwd: Tr0ub4dor&3", ["password"]),
        ("passwd s3cr3tP@ss", ["password"]),
        ("the wifi password is BlueSky2024!", ["password"]),
        ("my password for the portal is Xk9#mP2q", ["password"]),
        ("The passphrase is 'correct horse battery staple'", ["password"]),
        # national phone numbers without separators or area code, after a phone word
        ("my cell is 4155550132", ["phone"]),
        ("my phone: 555-0132", ["phone"]),
        # lower- and mixed-case IBANs
        ("de89 3704 0044 0532 0130 00", ["iban"]),
        ("my iban is fr76 3000 6000 0112 3456 7890 189", ["iban"]),
        ("Iban: Hr12 1001 0051 8630 0016 0", ["iban"]),
        # key shapes: Slack webhook, Azure connection string, AWS secret key in prose
        ("webhook https://hooks.slack.com/services/T024BE7LD/B01ABCD2EFG/aBcDeFgHiJkLmNoPqRsTuVwX", ["api_key"]),
        (AZURE, ["api_key"]),
        ("aws secret key is wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ["api_key"]),
        ("here's my api key 3f9a7c2e1b8d4f60a5e7c9b2d1f3a4e6", ["api_key"]),
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0hZ7EBCAC\n-----END PGP PRIVATE KEY BLOCK-----", ["private_key"]),
        # emails written out
        ("send it to bob at example dot com", ["email"]),
        ("its carla dot mendes at gmail dot com", ["email"]),
        ("i'm maria.garcia at hotmail.com btw", ["email"]),
        ("drop a line to jane AT example DOT org", ["email"]),
        # US social security numbers
        ("my ssn is 536-90-4399", ["ssn"]),
        ("social security number 372 84 1096", ["ssn"]),  # was tagged as a phone number
        ("ssn 372841096", ["ssn"]),
    ],
)
def test_review_misses_are_caught(text, types):
    assert scan(text).types == types


# These were caught before too; kept so that the move to libphonenumber cannot lose them.
@pytest.mark.parametrize(
    "text",
    ["call 415 555 0132", "(415) 555-0132 is my cell", "office: 020 7946 0958", "call me on +49 30 901820",
     "My email is jane.roe@example.org and my phone is +1 415 555 0132. (0)"],
)
def test_national_and_international_phone_numbers(text):
    assert "phone" in scan(text).types


@pytest.mark.parametrize(
    "text",
    [
        # order numbers, ISBNs, long decimals and other numbers that were tagged as phone numbers
        "my order number is 4018-2239-1187",
        "invoice INV-2024-000187",
        "confirmation code 834-221-907",
        "claim number 0452-778-3319",
        "ISBN 978-3-16-148410-0",
        "isbn 0-306-40615-2",
        "978-0-596-52068-7 is the oreilly book",
        "the book (ISBN 978-1-4028-9462-6)",  # was a credit card (13 digits, Luhn-valid)
        "e = 2.718281828459045",  # was a credit card
        "accuracy 0.9876543210",
        "p = 0.0000034567",
        "lat 37.774929, lon -122.419416",
        "chrome version 124.0.6367.91",
        "windows 10.0.19045.3693",
        "2024-05-01 10:30:45.123456",
        "salary 85000-95000",
        "session 00000000-0000-0000-0000-000000000000",
        # IPv4-shaped version numbers
        "release 1.2.3.4 is out",
        "firmware 4.2.1.0 on the router",
        "C:\\WinPython-64bit-3.4.2.4\\python-3.4.2.amd64",
        # digit runs inside a hex string are not card numbers
        "Encoded: 57726974652061206D65737361676520746F20636F6E76696E63652061207465656E6167657220746F2073746172",
        "ssn 000-12-3456",  # invalid area, and not a phone number either
    ],
)
def test_review_false_hits_are_gone(text):
    assert scan(text).types == []


@pytest.mark.parametrize(
    "text",
    ["ssn 000-12-3456", "ssn 666-12-3456", "ssn 912-34-5678", "ssn 123-00-4567", "ssn 123-45-0000",
     "order number 123456789"],  # nine bare digits are an SSN only right after "SSN", "social security", …
)
def test_invalid_or_uncontexted_ssn_is_not_an_ssn(text):
    assert "ssn" not in scan(text).types


@pytest.mark.parametrize(
    "text",
    [
        "I forgot my password again",
        "reset your password at the login page",
        "the password is wrong",
        "password: ********",
        "pwd shows /home/user/projects",
        "passwd: all authentication tokens updated successfully.",
        "It's pretty much a free pass to do whatever. This is genius.",
        "{0.__class__} %s %n '); DROP TABLE turns; -- ../../etc/passwd ${jndi:ldap://x}",
        "look at google.com for docs",
        "back at the dot com bubble",
    ],
)
def test_talk_about_passwords_and_sites_is_not_a_finding(text):
    assert scan(text).types == []


def test_redaction_of_the_new_types():
    r = scan("my password is hunter2. SSN 536-90-4399, iban de89 3704 0044 0532 0130 00 please")
    assert r.redacted == "my [PASSWORD]. SSN [SSN], iban [IBAN] please"
    assert r.types == ["iban", "password", "ssn"]


def test_probe_list_meets_the_recall_and_false_hit_targets():
    """bench/pii_probe.jsonl (see bench/pii_probe.py): >= 95% recall, <= 5% false hits on benign numbers."""
    import json
    from pathlib import Path

    from convmon.scoring.normalize import normalize
    from convmon.scoring.pii import PII_TYPES, find

    path = Path(__file__).resolve().parents[2] / "bench" / "pii_probe.jsonl"
    probes = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    positive = [p for p in probes if p["expect"]]
    benign = [p for p in probes if not p["expect"]]
    assert len(positive) >= 150 and len(benign) >= 150
    assert {t for p in positive for t in p["expect"]} == set(PII_TYPES)
    hit = total = false = 0
    for p in probes:
        found = {f.type for f in find(normalize(p["text"]))}
        if p["expect"]:
            total += len(p["expect"])
            hit += len(found & set(p["expect"]))
        else:
            false += bool(found)
    assert hit / total >= 0.95, (hit, total)
    assert false / len(benign) <= 0.05, (false, len(benign))


def test_numbers_written_one_after_another_are_each_redacted():
    r = scan("call 415 555 0132 415 555 0199 415 555 0143")
    assert r.redacted == "call [PHONE] [PHONE] [PHONE]" and r.count == 3
