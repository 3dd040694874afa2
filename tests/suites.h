/* One line per Check suite: SUITE(x) expects `Suite *suite_x(void)` in tests/check_x.c. */
SUITE(mf)
SUITE(vocab)
SUITE(trace)
SUITE(lstm)
SUITE(score)
SUITE(eval)
SUITE(model)
SUITE(daemon)
