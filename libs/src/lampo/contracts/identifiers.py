"""Finnish identifiers and common formats: pure checks and pydantic ``Annotated`` types.

Every ``check_*`` function takes any value, returns the accepted string and otherwise raises
``pydantic_core.PydanticCustomError(reason, message)``. ``reason`` becomes the dead-letter
reason; ``message`` says which rule failed and never contains the value, which may be personal
data. ``PydanticCustomError`` is a ``ValueError``, so the checks also work outside pydantic.

Sources: /work/shared/FINNISH-FACTS.md (Government decree 128/2010 as amended by 690/2022).
"""

from __future__ import annotations

import functools
import importlib
import re
from datetime import date
from typing import Annotated, Any, Final

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from email_validator.syntax import validate_email_domain_name
from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from lampo.contracts.errors import (
    INVALID_BUSINESS_ID,
    INVALID_COUNTRY,
    INVALID_DECIMAL,
    INVALID_EMAIL,
    INVALID_LANGUAGE,
    INVALID_PERSONAL_IDENTITY_CODE,
    INVALID_PHONE,
    INVALID_POSTAL_CODE,
)

__all__ = [
    "EU_EEA_COUNTRIES",
    "ISO_639_1",
    "ISO_3166_ALPHA2",
    "BusinessId",
    "CountryCode",
    "Email",
    "EnergyMwh",
    "EuroAmount",
    "LanguageCode",
    "PersonalIdentityCode",
    "Phone",
    "PostalCode",
    "birth_date_of",
    "check_business_id",
    "check_country",
    "check_email",
    "check_energy_mwh",
    "check_euro_amount",
    "check_language",
    "check_personal_identity_code",
    "check_phone",
    "check_postal_code",
    "is_eu_eea",
    "is_valid_business_id",
    "is_valid_personal_identity_code",
]

_ASCII_DIGITS = re.compile(r"[0-9]+")

# --- personal identity code (henkilötunnus) -------------------------------------------------

_CENTURY_OF_SIGN: Final = {
    "+": 1800,
    **dict.fromkeys("-YXWVU", 1900),
    **dict.fromkeys("ABCDEF", 2000),
}
_CONTROL_CHARS: Final = "0123456789ABCDEFHJKLMNPRSTUVWXY"
_PIC_LENGTH: Final = 11
_LOWEST_INDIVIDUAL_NUMBER: Final = 2  # 002-899 issued, 900-999 temporary / test codes


def _pic_error(message: str) -> PydanticCustomError:
    return PydanticCustomError(INVALID_PERSONAL_IDENTITY_CODE, message)


def _pic_birth_date(value: object) -> tuple[str, date]:
    """Validate a personal identity code; return it unchanged with its birth date."""
    if not isinstance(value, str):
        raise _pic_error("must be a string")
    if len(value) != _PIC_LENGTH:
        raise _pic_error("must be 11 characters in the form DDMMYYCZZZQ")
    sign = value[6]
    century = _CENTURY_OF_SIGN.get(sign)
    if century is None:
        raise _pic_error("unknown century sign")
    birth, individual = value[:6], value[7:10]
    if not (_ASCII_DIGITS.fullmatch(birth) and _ASCII_DIGITS.fullmatch(individual)):
        raise _pic_error("birth date and individual number must be digits")
    try:
        born = date(century + int(birth[4:6]), int(birth[2:4]), int(birth[0:2]))
    except ValueError:
        raise _pic_error("date does not exist") from None
    if int(individual) < _LOWEST_INDIVIDUAL_NUMBER:
        raise _pic_error("individual number must be between 002 and 999")
    if value[10] != _CONTROL_CHARS[int(birth + individual) % 31]:
        raise _pic_error("check character does not match")
    return value, born


def check_personal_identity_code(value: object) -> str:
    """Accept a henkilötunnus ``DDMMYYCZZZQ`` and return it unchanged.

    Every century sign (``+``; ``-YXWVU``; ``ABCDEF``) is accepted and kept as sent: since 2023
    the sign is part of the identity. Individual numbers 900-999 (test codes) are accepted.
    Lower case is refused, not folded.
    """
    return _pic_birth_date(value)[0]


def is_valid_personal_identity_code(value: object) -> bool:
    try:
        _pic_birth_date(value)
    except PydanticCustomError:
        return False
    return True


def birth_date_of(code: str) -> date:
    """Birth date encoded in a personal identity code; ``ValueError`` if the code is invalid."""
    return _pic_birth_date(code)[1]


# --- business ID (Y-tunnus) -----------------------------------------------------------------

_BUSINESS_ID = re.compile(r"[0-9]{7}-[0-9]")
_BUSINESS_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2)


def check_business_id(value: object) -> str:
    """Accept a Y-tunnus ``NNNNNNN-C`` (weights 7,9,10,5,8,4,2, mod 11) and return it."""
    if not isinstance(value, str) or not _BUSINESS_ID.fullmatch(value):
        raise PydanticCustomError(INVALID_BUSINESS_ID, "must have the form NNNNNNN-C")
    remainder = sum(int(d) * w for d, w in zip(value[:7], _BUSINESS_ID_WEIGHTS, strict=True)) % 11
    if remainder == 1:
        raise PydanticCustomError(INVALID_BUSINESS_ID, "no check digit exists for this number")
    if int(value[8]) != (0 if remainder == 0 else 11 - remainder):
        raise PydanticCustomError(INVALID_BUSINESS_ID, "check digit does not match")
    return value


def is_valid_business_id(value: object) -> bool:
    try:
        check_business_id(value)
    except PydanticCustomError:
        return False
    return True


# --- postal code, phone, e-mail -------------------------------------------------------------

_POSTAL_CODE = re.compile(r"[0-9]{5}")
_FOREIGN_POSTAL_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]{0,11}")
_FINNISH_POSTAL_AREAS: Final = frozenset({"FI", "AX"})  # Åland uses Finnish postal codes


def check_postal_code(value: object, country: str | None = "FI") -> str:
    """Accept a postal code: five digits (``40950``) in Finland (or when ``country`` is None).

    Elsewhere in the EU/EEA, up to 12 letters, digits, spaces and hyphens (``123 45``).
    """
    if country is None or country in _FINNISH_POSTAL_AREAS:
        if not isinstance(value, str) or not _POSTAL_CODE.fullmatch(value):
            raise PydanticCustomError(INVALID_POSTAL_CODE, "must be five digits")
    elif not isinstance(value, str) or not _FOREIGN_POSTAL_CODE.fullmatch(value):
        raise PydanticCustomError(INVALID_POSTAL_CODE, "must be 1-12 letters, digits, spaces or hyphens")
    return value


def check_phone(value: object) -> str:
    """Accept a valid international phone number and return it in E.164 (``+358401234567``).

    The number must start with ``+`` and the country code; separators are tolerated and
    dropped. Validity is the phonenumbers library's (number plan and length), not a pattern.
    """
    if not isinstance(value, str) or not value.startswith("+"):
        raise PydanticCustomError(INVALID_PHONE, "must be in E.164 form, starting with +")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise PydanticCustomError(INVALID_PHONE, "is not a phone number") from None
    if number.extension:
        raise PydanticCustomError(INVALID_PHONE, "extensions are not allowed")
    if not phonenumbers.is_valid_number(number):
        raise PydanticCustomError(INVALID_PHONE, "is not a valid number in its numbering plan")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email_rule(library_message: str) -> str:
    # email-validator's messages may quote parts of the address; report only which part failed.
    text = library_message.lower()
    if "too long" in text:
        return "address is too long"
    if "after the @-sign" in text:
        return "the domain part is not valid"
    if "before the @-sign" in text or "local part" in text:
        return "the part before the @-sign is not valid"
    if "@-sign" in text:
        return "must contain exactly one @-sign"
    return "is not a valid e-mail address"


@functools.lru_cache(maxsize=4096)
def _valid_domain_name(domain: str, test_environment: bool = False, globally_deliverable: bool = True) -> object:
    return validate_email_domain_name(
        domain, test_environment=test_environment, globally_deliverable=globally_deliverable
    )


def _domain_name_once(domain: str, test_environment: bool = False, globally_deliverable: bool = True) -> object:
    """email-validator's check of the part after the @-sign, remembered per domain: it is a pure
    function of its arguments and most of the cost of a check (IDNA, per-character Unicode
    rules), while a register sees the same few thousand domains over and over. Invalid domains
    raise every time (``lru_cache`` keeps no exceptions). Only domain names are kept, at most
    4,096 of them; never whole addresses."""
    result = _valid_domain_name(domain, test_environment, globally_deliverable)
    return dict(result) if isinstance(result, dict) else result


# validate_email looks the function up in its own module at each call. (The package attribute
# ``email_validator.validate_email`` is the function, not the module, hence import_module.)
_email_validator_module: Any = importlib.import_module("email_validator.validate_email")
_email_validator_module.validate_email_domain_name = _domain_name_once


def check_email(value: object) -> str:
    """Accept an e-mail address (syntax only, no DNS) and return its normalised form.

    Normalisation is email-validator's: the domain is lower-cased (and IDNA-decoded), the local
    part NFC-normalised. Compare addresses in this form.
    """
    if not isinstance(value, str):
        raise PydanticCustomError(INVALID_EMAIL, "must be a string")
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise PydanticCustomError(INVALID_EMAIL, _email_rule(str(exc))) from None
    return result.normalized


# --- languages and countries ----------------------------------------------------------------

ISO_639_1: Final = frozenset(
    """
    aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy
    da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht
    hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky
    la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny
    oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss
    st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo
    za zh zu
    """.split()  # noqa: SIM905 - a table reads better than hundreds of quoted items
)
"""The 183 ISO 639-1 two-letter language codes, lower case."""

ISO_3166_ALPHA2: Final = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 - a table reads better than hundreds of quoted items
)
"""The 249 officially assigned ISO 3166-1 alpha-2 country codes, upper case."""

EU_MEMBER_STATES: Final = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()  # noqa: SIM905
)
"""The 27 EU member states (Greece is ``GR`` in ISO 3166, ``EL`` only in EU usage)."""

EEA_EFTA_STATES: Final = frozenset({"IS", "LI", "NO"})

EU_TERRITORIES_WITH_OWN_CODE: Final = frozenset({"AX", "GF", "GP", "MF", "MQ", "RE", "YT"})
"""Parts of member states inside the EU that ISO 3166 codes separately: Åland and the French
outermost regions. Sending data there is not a transfer out of the EU."""

EU_EEA_COUNTRIES: Final = EU_MEMBER_STATES | EEA_EFTA_STATES | EU_TERRITORIES_WITH_OWN_CODE
"""Where the privacy statement (§9) allows data to be transferred or disclosed."""


def is_eu_eea(country: str) -> bool:
    """True if an ISO 3166-1 alpha-2 code (upper case) lies in the EU/EEA."""
    return country in EU_EEA_COUNTRIES


def check_language(value: object) -> str:
    """Accept an ISO 639-1 code in lower case (``fi``, ``sv``)."""
    if not isinstance(value, str) or value not in ISO_639_1:
        raise PydanticCustomError(INVALID_LANGUAGE, "must be an ISO 639-1 code in lower case")
    return value


def check_country(value: object) -> str:
    """Accept an ISO 3166-1 alpha-2 code in upper case (``FI``)."""
    if not isinstance(value, str) or value not in ISO_3166_ALPHA2:
        raise PydanticCustomError(INVALID_COUNTRY, "must be an ISO 3166-1 alpha-2 code in upper case")
    return value


# --- decimal strings ------------------------------------------------------------------------

_EUROS = re.compile(r"-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?")
_MWH = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,6})?")


def check_euro_amount(value: object) -> str:
    """Accept euros as a decimal string (``"12.50"``, ``"-3"``) and return it unchanged.

    At most two decimals, no exponent, sign or leading zeros; negative for credits. A JSON
    number is refused: binary floats do not hold cents exactly.
    """
    if not isinstance(value, str):
        raise PydanticCustomError(INVALID_DECIMAL, "must be a decimal string, not a number")
    if not _EUROS.fullmatch(value):
        raise PydanticCustomError(INVALID_DECIMAL, "must be a decimal string in euros with at most two decimals")
    return value


def check_energy_mwh(value: object) -> str:
    """Accept energy in MWh as a non-negative decimal string with at most six decimals."""
    if not isinstance(value, str):
        raise PydanticCustomError(INVALID_DECIMAL, "must be a decimal string, not a number")
    if not _MWH.fullmatch(value):
        raise PydanticCustomError(INVALID_DECIMAL, "must be a non-negative decimal string in MWh, at most six decimals")
    return value


# --- Annotated types ------------------------------------------------------------------------
# A BeforeValidator sees the raw value, so a wrong type gets the field's own reason too. The
# JSON schema (and so the generated AsyncAPI document) shows the rule as a pattern.


def _schema(pattern: str, description: str, example: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern, "description": description, "examples": [example]})


PersonalIdentityCode = Annotated[
    str,
    BeforeValidator(check_personal_identity_code),
    _schema(
        r"^[0-9]{6}[-+YXWVUABCDEF][0-9]{3}[0-9A-Y]$",
        "Finnish personal identity code with valid date and check character",
        "010594Y9032",
    ),
]
BusinessId = Annotated[
    str,
    BeforeValidator(check_business_id),
    _schema(r"^[0-9]{7}-[0-9]$", "Finnish business ID (Y-tunnus) with check digit", "0402810-7"),
]
PostalCode = Annotated[
    str,
    BeforeValidator(check_postal_code),
    _schema(r"^[0-9]{5}$", "Finnish postal code", "40950"),
]
Phone = Annotated[
    str,
    BeforeValidator(check_phone),
    _schema(r"^\+[1-9][0-9]{4,14}$", "Phone number in E.164", "+358401234567"),
]
Email = Annotated[
    str,
    BeforeValidator(check_email),
    WithJsonSchema({"type": "string", "format": "email", "examples": ["maija@example.fi"]}),
]
LanguageCode = Annotated[
    str,
    BeforeValidator(check_language),
    WithJsonSchema({"type": "string", "enum": sorted(ISO_639_1), "description": "ISO 639-1"}),
]
CountryCode = Annotated[
    str,
    BeforeValidator(check_country),
    WithJsonSchema({"type": "string", "enum": sorted(ISO_3166_ALPHA2), "description": "ISO 3166-1 alpha-2"}),
]
EuroAmount = Annotated[
    str,
    BeforeValidator(check_euro_amount),
    _schema(_EUROS.pattern.join("^$"), "Euros as a decimal string (negative: credit)", "12.50"),
]
EnergyMwh = Annotated[
    str,
    BeforeValidator(check_energy_mwh),
    _schema(_MWH.pattern.join("^$"), "Energy in MWh as a decimal string", "12.345"),
]
