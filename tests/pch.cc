// Holds the precompiled gtest header that every test binary reuses.
