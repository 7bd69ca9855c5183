"""Finnish identifiers and formats: every example of FINNISH-FACTS.md, and the error reasons."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from lampo.contracts.identifiers import (
    EU_EEA_COUNTRIES,
    ISO_639_1,
    ISO_3166_ALPHA2,
    BusinessId,
    CountryCode,
    Email,
    EnergyMwh,
    EuroAmount,
    LanguageCode,
    PersonalIdentityCode,
    Phone,
    PostalCode,
    birth_date_of,
    check_business_id,
    check_country,
    check_email,
    check_energy_mwh,
    check_euro_amount,
    check_language,
    check_personal_identity_code,
    check_phone,
    check_postal_code,
    is_eu_eea,
    is_valid_business_id,
    is_valid_personal_identity_code,
)

VALID_CODES = {
    "010594Y9032": date(1994, 5, 1),
    "020594X903P": date(1994, 5, 2),
    "030594W903B": date(1994, 5, 3),
    "040594V9030": date(1994, 5, 4),
    "050594U903M": date(1994, 5, 5),
    "010516B903X": date(2016, 5, 1),
    "020516C903K": date(2016, 5, 2),
    "030516D9037": date(2016, 5, 3),
    "010501E9032": date(2001, 5, 1),
    "020503F9037": date(2003, 5, 2),
}

INVALID_CODES = {
    "131052-308U": "check character does not match",
    "310252-9035": "date does not exist",  # 31 February; the check character matches
    "131052G308T": "unknown century sign",
    "290223A9021": "date does not exist",  # 2023 is not a leap year
}


def rule_of(check: object, value: object) -> tuple[str, str]:
    assert callable(check)
    with pytest.raises(PydanticCustomError) as caught:
        check(value)
    return caught.value.type, caught.value.message()


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_identity_codes_from_the_facts(code: str) -> None:
    assert check_personal_identity_code(code) == code  # unchanged: the sign is never normalised
    assert is_valid_personal_identity_code(code)
    assert birth_date_of(code) == VALID_CODES[code]


@pytest.mark.parametrize(("code", "rule"), INVALID_CODES.items())
def test_invalid_identity_codes_from_the_facts(code: str, rule: str) -> None:
    assert rule_of(check_personal_identity_code, code) == ("invalid_personal_identity_code", rule)
    assert not is_valid_personal_identity_code(code)
    with pytest.raises(ValueError, match=rule):
        birth_date_of(code)


def test_the_classic_example_code_is_valid_and_every_1900s_sign_dates_alike() -> None:
    assert is_valid_personal_identity_code("131052-308T")
    for sign in "-YXWVU":
        assert birth_date_of(f"131052{sign}308T") == date(1952, 10, 13)
    assert birth_date_of("010100+900F") == date(1800, 1, 1)


def test_century_signs_make_distinct_people() -> None:
    # Since 2023 the sign is part of the identity: both codes are valid and kept as sent.
    assert check_personal_identity_code("100190-999P") == "100190-999P"
    assert check_personal_identity_code("100190Y999P") == "100190Y999P"


def test_leap_day_exists_in_leap_years_only() -> None:
    assert birth_date_of("290224A900J") == date(2024, 2, 29)
    assert birth_date_of("290296-9004") == date(1996, 2, 29)
    assert birth_date_of("290200A900B") == date(2000, 2, 29)  # divisible by 400: leap
    assert rule_of(check_personal_identity_code, "290200-900B")[1] == "date does not exist"  # 1900: not leap
    assert rule_of(check_personal_identity_code, "290223A9021")[1] == "date does not exist"


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("010594Y903", "must be 11 characters in the form DDMMYYCZZZQ"),
        ("010594y9032", "unknown century sign"),  # lower case is refused, not folded
        ("0105a4Y9032", "birth date and individual number must be digits"),
        ("010594Y0012", "individual number must be between 002 and 999"),
        ("010594Y903z", "check character does not match"),
        (10594, "must be a string"),
    ],
)
def test_identity_code_rules(value: object, rule: str) -> None:
    assert rule_of(check_personal_identity_code, value) == ("invalid_personal_identity_code", rule)


@pytest.mark.parametrize("value", ["0402810-7", "2077474-0", "0737546-2", "1572860-0"])
def test_valid_business_ids_from_the_facts(value: str) -> None:
    assert check_business_id(value) == value
    assert is_valid_business_id(value)


@pytest.mark.parametrize("value", ["2077474-1", "0737546-1"])
def test_invalid_business_ids_from_the_facts(value: str) -> None:
    assert rule_of(check_business_id, value) == ("invalid_business_id", "check digit does not match")


def test_a_body_with_remainder_one_has_no_valid_check_digit() -> None:
    for digit in range(10):
        assert rule_of(check_business_id, f"0000006-{digit}") == (
            "invalid_business_id",
            "no check digit exists for this number",
        )


@pytest.mark.parametrize("value", ["402810-7", "04028107", "0402810-", "O402810-7", None])
def test_business_id_form(value: object) -> None:
    assert rule_of(check_business_id, value) == ("invalid_business_id", "must have the form NNNNNNN-C")


def test_postal_codes() -> None:
    assert check_postal_code("40950") == "40950"
    assert check_postal_code("22100", "AX") == "22100"  # Åland uses Finnish codes
    assert check_postal_code("123 45", "SE") == "123 45"
    for bad in ["4095", "409500", "40 950", 40950]:
        assert rule_of(check_postal_code, bad) == ("invalid_postal_code", "must be five digits")


def test_phone_numbers_are_validated_and_returned_in_e164() -> None:
    assert check_phone("+358401234567") == "+358401234567"
    assert check_phone("+358 40 123 4567") == "+358401234567"
    assert check_phone("+46701234567") == "+46701234567"
    assert rule_of(check_phone, "0401234567")[0] == "invalid_phone"  # national form: no country
    assert rule_of(check_phone, "+3584")[0] == "invalid_phone"
    assert rule_of(check_phone, "+35800000")[0] == "invalid_phone"
    assert rule_of(check_phone, "+358401234567 ext. 12")[1] == "extensions are not allowed"


def test_email_addresses() -> None:
    assert check_email("maija@example.fi") == "maija@example.fi"
    assert check_email("maija@EXAMPLE.FI") == "maija@example.fi"  # domain normalised
    for bad in ["maija", "maija@@example.fi", "maija@example", "maija@exa mple.fi", ".maija@example.fi"]:
        reason, message = rule_of(check_email, bad)
        assert reason == "invalid_email"
        assert bad not in message and "maija" not in message


def test_remembered_domain_checks_answer_as_email_validator_does() -> None:
    # check_email remembers email-validator's verdict on the part after the @-sign; every answer,
    # first or repeated, must be the library's own (normalised form, or the same failed rule).
    from email_validator import EmailNotValidError
    from email_validator.syntax import validate_email_domain_name

    from lampo.contracts.identifiers import _domain_name_once

    addresses = [
        "maija@example.fi",
        "Maija.Meikalainen@EXAMPLE.FI",
        "maija@xn--kyl-5qa.fi",
        "maija@Äänekoski.FI",
        "maija@example",
        "maija@localhost",
        "maija@-example.fi",
        "maija@exa_mple.fi",
        "maija@" + "a" * 64 + ".fi",
        "maija@test",
        "maija@123.fi",
    ]

    def reference(address: str) -> tuple[str, str]:
        domain = address.rsplit("@", 1)[1]
        try:
            return "ok", str(validate_email_domain_name(domain))
        except EmailNotValidError as e:
            return "error", str(e)

    def remembered(address: str) -> tuple[str, str]:
        domain = address.rsplit("@", 1)[1]
        try:
            return "ok", str(_domain_name_once(domain))
        except EmailNotValidError as e:
            return "error", str(e)

    for _ in range(2):  # the second round answers from memory where it can
        for address in addresses:
            assert remembered(address) == reference(address)
    assert check_email("maija@Äänekoski.FI") == check_email("maija@Äänekoski.FI") == "maija@äänekoski.fi"
    assert rule_of(check_email, "maija@localhost")[0] == rule_of(check_email, "maija@localhost")[0] == "invalid_email"


def test_languages() -> None:
    assert len(ISO_639_1) == 183
    assert check_language("fi") == "fi" and check_language("sv") == "sv" and check_language("se") == "se"
    for bad in ["FI", "fin", "xx", ""]:
        assert rule_of(check_language, bad)[0] == "invalid_language"


def test_countries_and_the_eu_eea() -> None:
    assert len(ISO_3166_ALPHA2) == 249
    assert check_country("FI") == "FI"
    for bad in ["fi", "FIN", "XK", "EL", "UK"]:
        assert rule_of(check_country, bad)[0] == "invalid_country"
    assert EU_EEA_COUNTRIES <= ISO_3166_ALPHA2
    for country in ["FI", "SE", "DE", "GR", "NO", "IS", "LI", "AX"]:
        assert is_eu_eea(country)
    for country in ["US", "GB", "CH", "RU", "fi"]:
        assert not is_eu_eea(country)


@pytest.mark.parametrize("value", ["0", "12", "12.5", "12.50", "-10.00", "-0.01", "123456789012345.99"])
def test_euro_amounts(value: str) -> None:
    assert check_euro_amount(value) == value


@pytest.mark.parametrize("value", ["12.505", "1e3", "+1", "01.00", ".5", "12.", "NaN", "1 000", "", "12,50"])
def test_euro_amount_rules(value: str) -> None:
    assert rule_of(check_euro_amount, value)[0] == "invalid_decimal"


def test_money_and_energy_are_strings_not_json_numbers() -> None:
    assert rule_of(check_euro_amount, 12.5) == ("invalid_decimal", "must be a decimal string, not a number")
    assert rule_of(check_energy_mwh, 1) == ("invalid_decimal", "must be a decimal string, not a number")


def test_energy() -> None:
    assert check_energy_mwh("0") == "0"
    assert check_energy_mwh("18.123456") == "18.123456"
    for bad in ["-1", "1.1234567", "1e2"]:
        assert rule_of(check_energy_mwh, bad)[0] == "invalid_decimal"


class Sample(BaseModel):
    code: PersonalIdentityCode
    business_id: BusinessId
    postal_code: PostalCode
    phone: Phone
    email: Email
    language: LanguageCode
    country: CountryCode
    amount: EuroAmount
    energy: EnergyMwh


GOOD = {
    "code": "010594Y9032",
    "business_id": "0402810-7",
    "postal_code": "40950",
    "phone": "+358 40 123 4567",
    "email": "maija@example.fi",
    "language": "fi",
    "country": "FI",
    "amount": "-12.50",
    "energy": "1.5",
}


def test_annotated_types_validate_and_keep_values() -> None:
    sample = Sample.model_validate(GOOD)
    assert sample.code == "010594Y9032"
    assert sample.phone == "+358401234567"
    assert sample.amount == "-12.50"  # decimal string in, same string out
    assert sample.model_dump(mode="json")["amount"] == "-12.50"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("code", "131052-308U", "invalid_personal_identity_code"),
        ("business_id", "2077474-1", "invalid_business_id"),
        ("postal_code", "4095", "invalid_postal_code"),
        ("phone", "+3581", "invalid_phone"),
        ("email", "maija@", "invalid_email"),
        ("language", "xx", "invalid_language"),
        ("country", "XX", "invalid_country"),
        ("amount", 12.5, "invalid_decimal"),
        ("energy", "-1", "invalid_decimal"),
    ],
)
def test_annotated_types_raise_their_reason_on_the_field(field: str, value: object, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate({**GOOD, field: value})
    [error] = caught.value.errors()
    assert error["type"] == reason
    assert error["loc"] == (field,)
    assert str(value) not in error["msg"]


def test_json_schema_describes_the_rules() -> None:
    props = Sample.model_json_schema()["properties"]
    assert props["code"]["pattern"].startswith("^[0-9]{6}")
    assert props["amount"]["type"] == "string"
    assert "fi" in props["language"]["enum"]
