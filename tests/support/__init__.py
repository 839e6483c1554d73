"""Helpers shared by the tests (test servers, builders); no tests here."""
