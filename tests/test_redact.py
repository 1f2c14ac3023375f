from cmdai_cli import redact


def test_mask_shows_at_most_four_characters():
    assert redact.mask("wk_TESTSECRET_0123456789abcdef") == "wk_T****"
    assert redact.mask("abcdefgh") == "ab****"
    assert redact.mask("abc") == "****"
    assert redact.mask("") == ""
    assert redact.mask(None) is None


def test_scrub_masks_registered_secrets():
    secret = "sk_SCRUBME_0123456789"
    redact.register(secret)
    assert redact.scrub(f"failed for {secret}!") == "failed for sk_S****!"
    assert redact.scrub("nothing here") == "nothing here"
