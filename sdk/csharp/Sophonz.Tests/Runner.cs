// The SDK's own test runner (NuGet, hence xUnit/NUnit, is out of reach): a console
// program that runs each test in order, prints "ok"/"FAIL" per test and a closing
// "N passed, N failed" line, and exits non-zero on any failure.
//   mono SophonzTests.exe           unit tests, then live tests against SOPHRA_TEST_BASE_URL
//   mono SophonzTests.exe --unit    unit tests only (no server needed)
// A live test run without its environment fails (it is never skipped).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading.Tasks;

namespace Sophonz.Tests
{
    public static class Runner
    {
        private static readonly List<KeyValuePair<string, Func<Task>>> tests = new List<KeyValuePair<string, Func<Task>>>();

        public static void Test(string name, Func<Task> body) { tests.Add(new KeyValuePair<string, Func<Task>>(name, body)); }

        public static void Test(string name, Action body)
        {
            Test(name, () => { body(); return Task.FromResult(0); });
        }

        public static int Main(string[] args)
        {
            var unitOnly = Array.IndexOf(args, "--unit") >= 0;
            UnitTests.Register();
            if (!unitOnly) LiveTests.Register();
            int passed = 0, failed = 0;
            var all = Stopwatch.StartNew();
            foreach (var test in tests)
            {
                var watch = Stopwatch.StartNew();
                try
                {
                    test.Value().GetAwaiter().GetResult();
                    passed++;
                    Console.WriteLine("ok   {0} ({1} ms)", test.Key, watch.ElapsedMilliseconds);
                }
                catch (Exception e)
                {
                    failed++;
                    Console.WriteLine("FAIL {0} ({1} ms)\n     {2}", test.Key, watch.ElapsedMilliseconds,
                                      e.ToString().Replace("\n", "\n     "));
                }
            }
            LiveTests.WriteFacts();
            Console.WriteLine("ran {0} tests in {1:0.0} s", passed + failed, all.Elapsed.TotalSeconds);
            Console.WriteLine("{0} passed, {1} failed", passed, failed);  // alone on its line: CI reads it
            return failed == 0 ? 0 : 1;
        }
    }
}
