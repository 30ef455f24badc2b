CREATE TABLE half_made (id integer);
SELECT this_function_does_not_exist();
