"""No test may use the network: pytest-socket (enabled in pyproject addopts) blocks sockets."""

import socket

import pytest
from pytest_socket import SocketBlockedError


def test_opening_an_internet_socket_fails():
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def test_the_guard_is_configured_for_the_whole_suite(pytestconfig):
    assert pytestconfig.getoption("disable_socket") is True
