// The one doctest main for the unit_tests executable; every tests/unit/*.cpp
// links against it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
