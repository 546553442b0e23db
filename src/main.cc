// The one `mill` binary: every role is a subcommand (see cli/).

#include "cli/commands.h"

int main(int argc, char** argv) { return mill::cli::run(argc, argv); }
