// The test runner (Sophonz.Tests, assembly SophonzTests) checks the client-side rules
// (backoff, URL and query encoding) directly. An attribute rather than the .csproj's
// <InternalsVisibleTo>, so that mcs, which reads no project file, sees it too.
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("SophonzTests")]
