"""Session-wide fixture trees (built once; each is a few hundred kB to 4 MB)."""

from __future__ import annotations

import os

import pytest

from tests.data import fixtures

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def sc_root(tmp_path_factory):
    return fixtures.make_speech_commands(tmp_path_factory.mktemp("speech_commands"))


@pytest.fixture(scope="session")
def vww_folder_root(tmp_path_factory):
    return fixtures.make_vww_folder(tmp_path_factory.mktemp("vww_folder"), per_class=20)


@pytest.fixture(scope="session")
def vww_tfrecord_root(tmp_path_factory):
    return fixtures.make_vww_tfrecords(tmp_path_factory.mktemp("vww_tfrecord"))


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory):
    return fixtures.make_cifar10(tmp_path_factory.mktemp("cifar10"))


@pytest.fixture(scope="session")
def fashion_root(tmp_path_factory):
    return fixtures.make_fashion_mnist(tmp_path_factory.mktemp("fashion_mnist"))
