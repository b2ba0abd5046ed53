import pytest

from common.errors import ConfigError, DataError, NonFiniteLossError, exit_on_user_error


def test_data_error_names_file_line_and_hint():
    e = DataError("/data/ACM/link.dat", "expected 4 tab-separated fields, got 2", line=17, hint="re-download")
    assert str(e) == "/data/ACM/link.dat:17: expected 4 tab-separated fields, got 2 (re-download)"
    assert (e.path, e.line) == ("/data/ACM/link.dat", 17)
    assert str(DataError("x", "missing")) == "x: missing"


@pytest.mark.parametrize("exc", [DataError("f", "bad"), NonFiniteLossError("nan"), ConfigError("key")])
def test_exit_on_user_error_prints_one_line_and_exits_2(exc, capsys):
    @exit_on_user_error
    def main():
        raise exc

    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_exit_on_user_error_lets_bugs_through():
    @exit_on_user_error
    def main():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        main()
    assert exit_on_user_error(lambda: 3)() == 3
