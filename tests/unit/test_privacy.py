"""Security review finding 4: nothing that identifies a conversation or a user, and no PII in metadata,
leaves the worker. Conversation ids and user refs are keyed pseudonyms from the moment a record is decoded."""

import json
import os

from convmon.batch import BatchProcessor, RawRecord
from convmon.contract import ChatTurn
from convmon.ingest import TurnDecoder
from convmon.privacy import Protector, load_key, pseudonym
from convmon.scoring.pii import PiiScorer
from convmon.scoring.pipeline import ScoringPipeline
from convmon.store.turns import to_row

KEY = b"test-key-not-a-secret"
TURN = {"event_id": "5b4f1d0e-8a39-4c2e-9a51-2f0d5e1b7c11", "conversation_id": "alice-2026-11-30", "turn_index": 0,
        "role": "user", "text": "hi", "ts": "2026-11-28T12:00:00Z", "app": "support-bot",
        "model": {"provider": "p", "name": "m", "version": "v"}, "user_ref": "alice@example.com",
        "metadata": {"region": "eu", "contact": "call me on +1 415 555 0132", "order": "A-1234",
                     "nested": {"mails": ["bob@example.org"]}}}


def scored():
    processor = BatchProcessor(TurnDecoder(), ScoringPipeline([PiiScorer()]), Protector(KEY, ["order"]))
    return processor.process([RawRecord(json.dumps(TURN).encode(), key=b"alice-2026-11-30")]).scored


def test_ids_are_pseudonymised_and_metadata_redacted_before_anything_leaves():
    (s,) = scored()
    t = s.turn
    assert t.conversation_id == pseudonym(KEY, "alice-2026-11-30") and t.conversation_id.startswith("ps_")
    assert t.user_ref == pseudonym(KEY, "alice@example.com")
    assert t.metadata == {"region": "eu", "contact": "call me on [PHONE]", "order": "A-1234",
                          "nested": {"mails": ["[EMAIL]"]}}
    ChatTurn.model_validate(t.model_dump(mode="json", by_alias=True))  # still a valid turn (identifier charset)
    leaving = s.event_bytes().decode() + json.dumps(to_row(s), default=str)
    for raw in ("alice", "415 555", "bob@example.org"):
        assert raw not in leaving, raw


def test_pseudonyms_are_stable_under_one_key_and_differ_under_another():
    assert pseudonym(KEY, "c-1") == pseudonym(KEY, "c-1") != pseudonym(KEY, "c-2")
    assert pseudonym(KEY, "c-1") != pseudonym(b"other-key", "c-1")


def test_without_a_configured_key_one_is_generated_once_and_kept_private(tmp_path):
    first = load_key(None, tmp_path)
    assert first == load_key(None, tmp_path) and len(first) >= 32
    assert os.stat(tmp_path / "pseudonym.key").st_mode & 0o077 == 0
    assert load_key("configured", tmp_path) == b"configured"


def test_metadata_redaction_sees_through_invisible_characters_like_the_text_does():
    from convmon.privacy import redact_value

    assert redact_value({"note": "reach bob\u200b@example.org"}) == {"note": "reach [EMAIL]"}
    assert redact_value([1, None, "plain"]) == [1, None, "plain"]
